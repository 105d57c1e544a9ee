"""Crash and load benchmark of the triage service, with real peers and a real process tree.

    .venv/bin/python bench/crash_bench.py crash              # 1,000 instances, 4 assoc., 2 kills
    .venv/bin/python bench/crash_bench.py load               # 5,000 instances, 8 associations
    .venv/bin/python bench/crash_bench.py crash --instances 200 --associations 2   # quick

``crash``: ``radiolens serve`` runs as its own process group; dcmtk's ``storescu`` sends
the instances over concurrent associations; the whole service is ``kill -9``ed (every
process of the group) twice mid-burst and restarted on the same data folder; each file
whose C-STORE was not answered with success is sent again, as a PACS would. At the end,
once the worker has scored everything: sent / acknowledged / stored / scored / lost
(acknowledged but not in the worklist or not on disk) / scored twice (more than one
result for a one-instance study). Lost and scored twice must be 0.

``load``: one service, ``--associations`` concurrent ``storescu`` processes, and an HTTP
client polling ``/api/studies`` during the burst; lost instances, the peak resident
memory of each process of the service, and the p50/p95 of ``/api/studies``.

Results are printed as JSON and written to ``bench/results/crash_<mode>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
STORESCU = "/usr/bin/storescu"
TOKEN = "crash-bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_instances(out: Path, n: int, size: int = 256) -> list[Path]:
    """``n`` one-instance studies: small synthetic radiographs as Secondary Captures."""
    from radiolens.imaging import to_secondary_capture, write_dicom_atomic

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    made = []
    for i in range(n):
        body = np.exp(-(((xx - size / 2) / (0.42 * size)) ** 2
                        + ((yy - size / 2) / (0.5 * size)) ** 2))
        lungs = np.exp(-(((np.abs(xx - size / 2) - 0.2 * size) / (0.1 * size)) ** 2
                         + ((yy - 0.45 * size) / (0.22 * size)) ** 2))
        img = 0.25 + 0.6 * body - 0.35 * lungs + 0.08 * rng.random((size, size))
        ds = to_secondary_capture((np.clip(img, 0, 1) * 255).astype(np.uint8),
                                  patient_id=f"CRASH{i:05d}", modality="DX")
        path = out / f"c{i:05d}.dcm"
        write_dicom_atomic(ds, path)
        made.append(path)
    return made


class Service:
    """``radiolens serve`` as its own process group (so ``kill -9`` takes all of it)."""

    def __init__(self, data_dir: Path, model: str, log_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir or data_dir.parent
        self.model = model
        self.dicom_port = _free_port()
        self.http_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> None:
        exe = Path(sys.executable).parent / "radiolens"
        env = dict(os.environ, RADIOLENS_API_TOKEN=TOKEN)
        self.log = open(self.log_dir / "service.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(exe), "-q", "serve", "--data-dir", str(self.data_dir), "--dicom-port",
             str(self.dicom_port), "--http-port", str(self.http_port), "--model", self.model],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # the API starts last; then one look at the DICOM port (each bare
                # connection holds an association slot until the receiver's ACSE timeout)
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=1):
                    pass
                with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"radiolens serve exited ({self.proc.returncode}); "
                                       f"see {self.log.name}") from None
                time.sleep(0.2)
        raise TimeoutError("radiolens serve did not open its ports")

    def pids(self) -> list[int]:
        """Every live process of the service's process group."""
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "-g", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill9(self) -> int:
        assert self.proc is not None
        pids = self.pids()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return len(pids)

    def stop(self) -> int:
        """SIGTERM, then the number of the group's processes still alive 30 s later."""
        if self.proc is None or self.proc.poll() is not None:
            return 0
        os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.5)
        left = len(self.pids())
        if left:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return left


_SENDING = re.compile(r"Sending file: (\S+)")
_RESPONSE = re.compile(r"Received Store Response(?: \(([^)]*)\))?")


def storescu(port: int, files: list[Path], acked: set[Path], lock: threading.Lock) -> None:
    """Send ``files`` in one association; add each file answered with success to ``acked``."""
    env = dict(os.environ, TCP_NODELAY="1")
    proc = subprocess.Popen([STORESCU, "-v", "-aec", "RADIOLENS", "127.0.0.1", str(port),
                             *map(str, files)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    current: Path | None = None
    for line in proc.stdout:
        if "Association Rejected" in line or "Association Request Failed" in line or \
                line.startswith("F:") or line.startswith("E:"):
            print(f"storescu: {line.strip()}", file=sys.stderr)
        m = _SENDING.search(line)
        if m:
            current = Path(m.group(1))
            continue
        m = _RESPONSE.search(line)
        if m and current is not None:
            if (m.group(1) or "").lower().startswith("success"):
                with lock:
                    acked.add(current)
            current = None
    proc.wait()


def send_burst(port: int, files: list[Path], associations: int, acked: set[Path],
               lock: threading.Lock) -> list[threading.Thread]:
    chunks = [files[i::associations] for i in range(associations)]
    threads = [threading.Thread(target=storescu, args=(port, c, acked, lock), daemon=True)
               for c in chunks if c]
    for t in threads:
        t.start()
    return threads


def worklist_counts(data_dir: Path) -> dict[str, Any]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from radiolens.worklist import Instance, Result, Study, open_worklist

    engine = open_worklist(data_dir / "worklist.db")
    try:
        with Session(engine) as s:
            sops = set(s.scalars(select(Instance.sop_instance_uid)))
            statuses = dict(s.execute(select(Study.status, func.count()).group_by(Study.status))
                            .all())
            per_study = s.execute(select(Result.study_fk, func.count())
                                  .group_by(Result.study_fk)).all()
            paths = list(s.scalars(select(Instance.path)))
    finally:
        engine.dispose()
    on_disk = sum(1 for p in paths if (data_dir / p).is_file() or Path(p).is_file())
    return {"sops": sops, "statuses": statuses, "twice": sum(1 for _, c in per_study if c > 1),
            "on_disk": on_disk}


#: Study states a worker has finished with.
_SETTLED = ("scored", "needs-check", "failed", "reviewed")


def wait_scored(data_dir: Path, n: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        counts = worklist_counts(data_dir)
        done = sum(v for k, v in counts["statuses"].items() if k in _SETTLED)
        if done >= n or time.monotonic() > deadline:
            return counts
        time.sleep(2)


def sop_of(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def run_crash(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    files = make_instances(work / "send", args.instances)
    data_dir = work / "data"
    data_dir.mkdir()
    acked: set[Path] = set()
    lock = threading.Lock()
    svc = Service(data_dir, args.model)
    kills = []
    rounds = 0
    pending = list(files)
    t0 = time.monotonic()
    while pending:
        rounds += 1
        svc.start()
        threads = send_burst(svc.dicom_port, pending, args.associations, acked, lock)
        if len(kills) < args.kills:
            target = len(acked) + max(1, len(pending) // (args.kills + 1 - len(kills)))
            while len(acked) < target and any(t.is_alive() for t in threads):
                time.sleep(0.05)
            kills.append({"after_acked": len(acked), "processes_killed": svc.kill9()})
        for t in threads:
            t.join()
        pending = [f for f in files if f not in acked]
    counts = wait_scored(data_dir, len(files), args.timeout)
    orphans = svc.stop()
    wanted = {sop_of(f) for f in acked}
    lost = len(wanted - counts["sops"])
    scored = counts["statuses"].get("scored", 0) + counts["statuses"].get("needs-check", 0)
    return {"instances": len(files), "associations": args.associations, "kills": kills,
            "send_rounds": rounds, "acknowledged": len(acked), "stored": len(counts["sops"]),
            "on_disk": counts["on_disk"], "statuses": counts["statuses"], "scored": scored,
            "lost": lost, "scored_twice": counts["twice"],
            "processes_left_30s_after_sigterm": orphans,
            "wall_s": round(time.monotonic() - t0, 1)}


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cmd(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    return raw[:80]


def run_load(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import httpx

    files = make_instances(work / "send", args.instances)
    data_dir = work / "data"
    data_dir.mkdir()
    acked: set[Path] = set()
    lock = threading.Lock()
    svc = Service(data_dir, args.model)
    svc.start()
    peaks: dict[int, int] = {}
    names: dict[int, str] = {}
    api_ms: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        url = f"http://127.0.0.1:{svc.http_port}/api/studies"
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            while not stop.is_set():
                t = time.perf_counter()
                client.get(url).raise_for_status()
                api_ms.append((time.perf_counter() - t) * 1000)
                for pid in svc.pids():
                    peaks[pid] = max(peaks.get(pid, 0), _rss_kb(pid))
                    names.setdefault(pid, _cmd(pid))
                stop.wait(0.25)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    t0 = time.monotonic()
    for t in send_burst(svc.dicom_port, files, args.associations, acked, lock):
        t.join()
    send_s = time.monotonic() - t0
    stop.set()
    poller.join()
    counts = worklist_counts(data_dir)
    orphans = svc.stop()
    wanted = {sop_of(f) for f in acked}
    return {"processes_left_30s_after_sigterm": orphans, "instances": len(files),
            "associations": args.associations,
            "acknowledged": len(acked), "stored": len(counts["sops"]),
            "lost": len(wanted - counts["sops"]), "send_s": round(send_s, 1),
            "instances_per_s": round(len(acked) / send_s, 1),
            "api_studies_requests": len(api_ms),
            "api_studies_p50_ms": round(float(np.percentile(api_ms, 50)), 1) if api_ms else None,
            "api_studies_p95_ms": round(float(np.percentile(api_ms, 95)), 1) if api_ms else None,
            "peak_rss_mb": {f"{pid} {names.get(pid, '?')}": round(kb / 1024, 1)
                            for pid, kb in sorted(peaks.items())}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["crash", "load"])
    ap.add_argument("--instances", type=int)
    ap.add_argument("--associations", type=int)
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--model", default="builtin:pneumonia-kermany")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for scoring")
    args = ap.parse_args()
    if args.instances is None:
        args.instances = 1000 if args.mode == "crash" else 5000
    if args.associations is None:
        args.associations = 4 if args.mode == "crash" else 8
    if not Path(STORESCU).exists():
        print("dcmtk's storescu is missing: apt-get install dcmtk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="radiolens-crash-", ignore_cleanup_errors=True
                                     ) as tmp:
        work = Path(tmp)
        result = run_crash(args, work) if args.mode == "crash" else run_load(args, work)
    result = {"mode": args.mode, "date": dt.date.today().isoformat(),
              "cpu_count": os.cpu_count(), **result}
    print(json.dumps(result, indent=2))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"crash_{args.mode}.json").write_text(json.dumps(result, indent=2) + "\n")
    ok = result["lost"] == 0 and result.get("scored_twice", 0) == 0
    if args.mode == "crash" and result["scored"] < result["acknowledged"]:
        print(f"only {result['scored']} of {result['acknowledged']} studies were scored "
              f"within --timeout {args.timeout:.0f} s", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
