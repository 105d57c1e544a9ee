"""The supervisor: bad settings and busy ports are refused before the model loads, a dead
worker is restarted with backoff, SIGTERM stops every part, a read-only database is
served degraded."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from radiolens.cli.main import main
from radiolens.runtime import TriageService, load_settings
from radiolens.worklist import default_db_path, open_worklist

from ..dicomnet.synthetic import free_port


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any attempt to read the model."""
    calls: list[str] = []

    def refuse(*args: Any, **_: Any) -> Any:
        calls.append(str(args))
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr("radiolens.models.resolve_run_dir", refuse)
    return calls


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("flags, message", [
    (["--forward-to", "pacs.example.org"], "--forward-to"),
    (["--hl7-to", "nonsense"], "--hl7-to"),
])
def test_bad_peer_settings_are_refused_at_start(flags: list[str], message: str,
                                                tmp_path: Path, no_model_load: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--data-dir", str(tmp_path), "--dicom-port", str(free_port()),
                 "--http-port", str(free_port()), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert no_model_load == []


@pytest.mark.parametrize("flag", ["--dicom-port", "--http-port"])
def test_a_busy_port_is_refused_before_the_model_loads(
        flag: str, busy_port: int, tmp_path: Path, no_model_load: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    ports = {"--dicom-port": str(free_port()), "--http-port": str(free_port()),
             flag: str(busy_port)}
    assert main(["serve", "--data-dir", str(tmp_path),
                 *[x for kv in ports.items() for x in kv]]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Errno" not in err
    assert f"choose another {flag}" in err and err.count("cannot listen") == 1
    assert no_model_load == []


def test_a_binary_policy_file_is_one_line(tiny_model: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.bin"
    policy.write_bytes(bytes(range(256)))
    assert main(["serve", "--data-dir", str(tmp_path), "--model", str(tiny_model),
                 "--policy", str(policy), "--dicom-port", str(free_port()),
                 "--http-port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "not a UTF-8 text" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


class _DeadProcess:
    exitcode = 1

    def is_alive(self) -> bool:
        return False


def test_a_dead_worker_is_restarted_with_backoff(tmp_path: Path) -> None:
    service = TriageService(load_settings({"data_dir": tmp_path}))
    starts: list[float] = []
    clock = {"now": 100.0}

    def fake_start() -> None:
        starts.append(clock["now"])
        service._worker_proc = _DeadProcess()  # dies again at once
        service._worker_started_at = clock["now"]

    service._start_worker = fake_start  # type: ignore[method-assign]
    service._worker_proc = _DeadProcess()
    service._worker_started_at = 0.0
    for now in [100.0, 100.5, 101.0, 101.0, 102.9, 103.0, 103.0, 106.9, 107.0]:
        clock["now"] = now
        service.check_worker(now=now)
    assert starts == [101.0, 103.0, 107.0]  # waits of 1, 2 and 4 s, not every second
    assert service.health_reasons() == ["worker restarting"]
    clock["now"] = 200.0  # it ran for a minute: the next wait starts at 1 s again
    service._worker_started_at = 107.0
    service.check_worker(now=200.0)
    clock["now"] = 201.0
    service.check_worker(now=201.0)
    assert starts[-1] == 201.0


def test_service_on_a_read_only_database_is_degraded(tiny_model: Path, tmp_path: Path) -> None:
    db = default_db_path(tmp_path)
    open_worklist(db).dispose()
    settings = load_settings({"data_dir": tmp_path, "db": f"sqlite:///file:{db}?mode=ro&uri=true",
                              "dicom_port": free_port(), "http_port": free_port(),
                              "model": str(tiny_model), "api_token": "t"})
    service = TriageService(settings, worker_in_process=False)
    service.start()
    try:
        body = httpx.get(f"{service.url}/health", headers={"Authorization": "Bearer t"}).json()
    finally:
        service.stop()
    assert body["status"] == "degraded" and "database read-only" in body["reasons"]


def test_worker_killed_is_restarted(tiny_model: Path, tmp_path: Path) -> None:
    from radiolens.dicomnet import send_files

    from ..dicomnet.synthetic import make_dataset, write_dicom

    settings = load_settings({"data_dir": tmp_path / "data", "dicom_port": free_port(),
                              "http_port": free_port(), "model": str(tiny_model),
                              "api_token": "t"})
    service = TriageService(settings)
    service.start()
    try:
        proc = service._worker_proc
        assert proc is not None
        proc.kill()
        proc.join(timeout=10)
        path = write_dicom(tmp_path, "after-kill")
        uid = str(make_dataset(seed="after-kill").StudyInstanceUID)
        assert send_files([path], f"RADIOLENS@127.0.0.1:{service.receiver.port}").ok
        assert service.wait_until_scored([uid], timeout=120) == {uid: "scored"}
        assert service.restarts == 1
    finally:
        service.stop()


def test_a_dead_api_is_restarted_while_the_receiver_keeps_receiving(
        tiny_model: Path, tmp_path: Path) -> None:
    from radiolens.dicomnet import send_files

    from ..dicomnet.synthetic import make_dataset, write_dicom

    settings = load_settings({"data_dir": tmp_path / "data", "dicom_port": free_port(),
                              "http_port": free_port(), "model": str(tiny_model),
                              "api_token": "t"})
    service = TriageService(settings)
    service.start()
    try:
        api = service._parts["api"].proc
        api.kill()
        api.join(timeout=10)
        path = write_dicom(tmp_path, "api-down")
        uid = str(make_dataset(seed="api-down").StudyInstanceUID)
        assert send_files([path], f"RADIOLENS@127.0.0.1:{service.receiver.port}").ok
        assert service.wait_until_scored([uid], timeout=120) == {uid: "scored"}
        assert service._parts["api"].proc is not api  # restarted by the supervisor
        body = httpx.get(f"{service.url}/health", headers={"Authorization": "Bearer t"},
                         timeout=30).json()
        assert body["status"] == "ok" and body["counts"]["scored"] == 1
        service._worker_proc.kill()  # the API process hears of a dead worker
        service._worker_proc.join(timeout=10)
        service.check_parts()
        body = httpx.get(f"{service.url}/health", headers={"Authorization": "Bearer t"},
                         timeout=30).json()
        assert body["status"] == "degraded" and body["reasons"] == ["worker restarting"]
    finally:
        service.stop()


def test_two_receiver_processes_share_the_port_and_one_is_restarted(
        tiny_model: Path, tmp_path: Path) -> None:
    from radiolens.dicomnet import send_files

    from ..dicomnet.synthetic import make_dataset, write_dicom

    settings = load_settings({"data_dir": tmp_path / "data", "dicom_port": free_port(),
                              "http_port": free_port(), "model": str(tiny_model),
                              "api_token": "t", "receivers": 2})
    service = TriageService(settings)
    service.start()
    to = f"RADIOLENS@127.0.0.1:{settings.dicom_port}"
    try:
        first, second = service._parts["receiver"].proc, service._parts["receiver-2"].proc
        assert first.is_alive() and second.is_alive()
        second.kill()
        second.join(timeout=10)
        seeds = [f"two-receivers-{i}" for i in range(6)]
        uids = [str(make_dataset(seed=seed).StudyInstanceUID) for seed in seeds]
        assert send_files([write_dicom(tmp_path, seeds[0])], to).ok  # the other one took it
        deadline = time.monotonic() + 30
        while service._parts["receiver-2"].proc is second:
            assert time.monotonic() < deadline, "the dead receiver was not restarted"
            service.check_parts()
            time.sleep(0.2)
        for seed in seeds[1:]:
            assert send_files([write_dicom(tmp_path, seed)], to).ok
        assert service.wait_until_scored(uids, timeout=120) == dict.fromkeys(uids, "scored")
        assert service._parts["receiver"].proc is first and first.is_alive()
        assert service._parts["receiver-2"].proc.is_alive()
    finally:
        service.stop()
    assert not first.is_alive()


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` but multiprocessing's resource tracker."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()
            if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _address_limits(pids: list[int], timeout: float = 60.0) -> list[int]:
    """The address-space limits of ``pids`` once each part has set its own."""
    pattern = re.compile(r"Max address space\s+(\d+|unlimited)\s")
    deadline = time.monotonic() + timeout
    found: list[int] = []
    while time.monotonic() < deadline:
        found = []
        for pid in pids:
            with contextlib.suppress(OSError):
                match = pattern.search(Path(f"/proc/{pid}/limits").read_text())
                if match and match[1] != "unlimited":
                    found.append(int(match[1]))
        if len(found) == len(pids):
            break
        threading.Event().wait(0.05)  # polling a condition, with a deadline
    return sorted(found)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_serve_and_its_worker(sig: int, tiny_model: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "radiolens.cli.main", "serve", "--data-dir", str(tmp_path),
           "--model", str(tiny_model), "--dicom-port", str(free_port()),
           "--http-port", str(free_port()), "--memory-limit-mb", "3000"]
    env = {**os.environ, "RADIOLENS_API_TOKEN": "t", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the banner comes after every part started
            if line.startswith("radiolens triage service:"):
                break
        parts = _children(proc.pid)
        assert len(parts) == 3, "receiver, worker and API run as processes"
        # the worker (--memory-limit-mb) and the receiver and API (4096 MiB by default)
        assert _address_limits(parts) == [3000 << 20, 4096 << 20, 4096 << 20]
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
        assert not any(_alive(pid) for pid in parts)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
