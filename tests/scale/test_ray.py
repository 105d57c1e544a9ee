"""Ray Data paths: ``predict --ray`` and ``label --ray`` on a local instance, and
``predict --ray ADDRESS`` on a two-node cluster formed on loopback with the ``ray`` CLI."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radiolens.archive.ray_runtime import ray_session
from radiolens.cli.main import main
from tests.scale.conftest import make_images, read_rows, scores

# found, not imported: radiolens imports Ray itself, after choosing its authentication
if importlib.util.find_spec("ray") is None:
    pytest.skip("Ray is not installed: pip install 'radiolens[scale]'", allow_module_level=True)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """One local Ray instance for the module (the commands below reuse it)."""
    with ray_session(None, num_cpus=2) as ray:
        yield ray


def predict(model: Path, *args: str) -> int:
    return main(["-q", "predict", "--checkpoint", str(model), "--backend", "onnx", *args])


def test_ray_gives_the_same_scores_and_resumes(ray_local: Any, tiny_model: Path,
                                               images: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths: the actors read them from the same folder
    plain, out = Path("plain.csv"), Path("ray.csv")
    assert predict(tiny_model, "images", "-o", str(plain)) == 1
    assert predict(tiny_model, "images", "-o", str(out), "--ray", "--batch-size", "2") == 1
    assert out.read_bytes() == plain.read_bytes()  # same rows, order, hashes and errors
    (images / "x02.png").write_bytes((images / "x04.png").read_bytes())
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tiny_model), "--backend", "onnx",
                 "images", "-o", str(out), "--ray", "--resume"]) == 1
    assert "1 of 2 files scored, 6 skipped" in capsys.readouterr().err
    got = scores(out)
    assert got["images/x02.png"] == got["images/x04.png"]


def reports(path: Path, n: int = 300) -> Path:
    phrases = ["Small left pleural effusion.", "No pneumothorax.", "Heart size is normal.",
               "Possible right lower lobe pneumonia.", "Mild cardiomegaly.",
               "No focal consolidation.", "A nodule cannot be excluded."]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            if i == 17:
                fh.write("{not json\n")
                continue
            text = " ".join(phrases[(i * k) % len(phrases)] for k in (1, 3, 5))
            impression = "" if i == 40 else phrases[i % len(phrases)]  # 40: no text
            fh.write(json.dumps({"id": f"R{i:04d}", "findings": "" if i == 40 else text,
                                 "impression": impression}) + "\n")
    return path


def test_label_ray_writes_the_same_bytes(ray_local: Any, tmp_path: Path) -> None:
    src = reports(tmp_path / "r.jsonl")
    common = ["-q", "label", str(src), "--on-error", "skip"]
    assert main([*common, "-o", str(tmp_path / "a.csv"), "--evidence",
                 str(tmp_path / "a.jsonl")]) == 0
    assert main([*common, "-o", str(tmp_path / "b.csv"), "--evidence",
                 str(tmp_path / "b.jsonl"), "--ray", "--workers", "2"]) == 0
    a, b = (tmp_path / "a.csv").read_bytes(), (tmp_path / "b.csv").read_bytes()
    assert a == b and a.count(b"\n") == 299  # header + 298 (2 records skipped)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive_nodes(ray_bin: Path, address: str, env: dict[str, str]) -> int:
    """Nodes ``ray status`` lists as active (0 while the cluster is not up)."""
    proc = subprocess.run([str(ray_bin), "status", f"--address={address}"], env=env,
                          capture_output=True, text=True, timeout=60)
    active = proc.stdout.partition("Active:")[2].partition("Pending:")[0]
    return sum(1 for line in active.splitlines() if " node_" in line)


def start_node(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``ray start ... --block`` in its own process group: stopping it (by its group id)
    stops exactly this node's processes, nothing else of Ray's on the machine."""
    return subprocess.Popen([*cmd, "--block"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="127.0.0.2 is Linux loopback")
def test_two_node_cluster_on_loopback(tiny_model: Path, tmp_path: Path) -> None:
    """``ray start --head`` and a second ``ray start --address`` on this machine, then
    ``predict --ray HOST:PORT`` from another process: both nodes score files.

    Ray 2.60 refuses a second node when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (the switch
    that keeps a single node on 127.0.0.1), and otherwise rewrites 127.0.0.1 into the
    machine's outward address; 127.0.0.2 (loopback, but not rewritten) keeps every
    connection on loopback. Its servers then listen on all interfaces, so the cluster gets
    a one-off authentication token: nothing reaches it without that token.
    """
    ray_bin = Path(sys.executable).with_name("ray")
    ip, port = "127.0.0.2", free_port()
    address = f"{ip}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_USAGE_STATS_ENABLED="0")
    temp = Path("/tmp") / f"rl-ray-{secrets.token_hex(3)}"  # short: unix socket paths
    images = make_images(tmp_path / "images", n=16)
    plain = tmp_path / "plain.csv"
    assert predict(tiny_model, str(images), "-o", str(plain)) == 1  # also warms the cache
    nodes = []
    try:
        nodes.append(start_node([str(ray_bin), "start", "--head", f"--port={port}",
                                 "--num-cpus=1", f"--node-ip-address={ip}",
                                 f"--temp-dir={temp}", "--include-dashboard=false",
                                 "--disable-usage-stats"], env))
        nodes.append(start_node([str(ray_bin), "start", f"--address={address}",
                                 "--num-cpus=1", f"--node-ip-address={ip}",
                                 "--disable-usage-stats"], env))
        deadline = time.monotonic() + 120
        while alive_nodes(ray_bin, address, env) < 2:
            assert all(n.poll() is None for n in nodes), "a ray start command exited"
            assert time.monotonic() < deadline, "the two Ray nodes did not come up in 2 min"
            time.sleep(1)
        out = tmp_path / "cluster.csv"
        proc = subprocess.run(
            [sys.executable, "-m", "radiolens.cli.main", "predict", "--checkpoint",
             str(tiny_model), "--backend", "onnx", str(images), "-o", str(out),
             "--ray", address, "--workers", "2", "--batch-size", "1"],
            env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
        assert proc.returncode == 1, proc.stderr[-3000:]  # broken.png is listed, not fatal
        assert "with 2 node(s)" in proc.stderr and "scored on 2 Ray nodes" in proc.stderr, \
            proc.stderr[-3000:]
        assert scores(out) == scores(plain) and len(read_rows(out)) == 17
    finally:
        for node in reversed(nodes):
            stop_node(node)
        shutil.rmtree(temp, ignore_errors=True)
