"""Resource faults on a real file system: a full disk, then a read-only one (needs root).

    sudo .venv/bin/python bench/fault_bench.py                # 40 studies, 48 MB tmpfs

The data folder (files and the SQLite worklist) is a small tmpfs mounted here.

1. Full disk: studies are sent with ``storescu``; right after, the tmpfs is filled to the
   brim with a filler file while the worker is still scoring. The service is watched for
   ``--hold`` seconds (``/health`` should say degraded; no study may fail for lack of
   space), then the tmpfs is grown (``mount -o remount,size=``) and every file whose
   C-STORE was refused is sent again. Every study must end scored, none failed.
2. Read-only: the service is started on the tmpfs remounted read-only (the kernel refuses
   a read-only remount under open writable files), more studies are sent (refused),
   ``/health`` is read, then the tmpfs is remounted read-write under the running service
   and the refused files are sent again: it must recover without a restart.

Prints JSON and writes ``bench/results/faults.json``; exit 1 when a study failed or was lost.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crash_bench import (
    HERE,
    STORESCU,
    TOKEN,
    Service,
    make_instances,
    sop_of,
    storescu,
    wait_scored,
    worklist_counts,
)


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def health(svc: Service) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {}
    for name, headers in (("anonymous", {}), ("token", {"Authorization": f"Bearer {TOKEN}"})):
        try:
            r = httpx.get(f"http://127.0.0.1:{svc.http_port}/health", headers=headers, timeout=10)
            out[name] = {"code": r.status_code, "body": r.json()}
        except Exception as exc:  # a bench reports what it saw
            out[name] = {"error": type(exc).__name__}
    return out


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the file system is full; the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:  # unbuffered: a full disk shows at the write, not at close
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    written += os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return written


def send(svc: Service, files: list[Path]) -> set[Path]:
    acked: set[Path] = set()
    storescu(svc.dicom_port, files, acked, threading.Lock())
    return acked


def resend_until_acked(svc: Service, files: list[Path], acked: set[Path], tries: int = 5
                       ) -> int:
    rounds = 0
    while rounds < tries and (todo := [f for f in files if f not in acked]):
        rounds += 1
        acked |= send(svc, todo)
        if [f for f in files if f not in acked]:
            time.sleep(2)
    return rounds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=40)
    ap.add_argument("--size-mb", type=int, default=48, help="tmpfs size before it is filled")
    ap.add_argument("--hold", type=float, default=30, help="seconds the disk stays full")
    ap.add_argument("--model", default="builtin:pneumonia-kermany")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("fault_bench mounts a tmpfs: run it as root", file=sys.stderr)
        return 2
    if not Path(STORESCU).exists():
        print("dcmtk's storescu is missing: apt-get install dcmtk", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"date": dt.date.today().isoformat(), "studies": args.studies}
    with tempfile.TemporaryDirectory(prefix="radiolens-faults-") as tmp:
        work = Path(tmp)
        mnt = work / "mnt"
        mnt.mkdir()
        mount("-t", "tmpfs", "-o", f"size={args.size_mb}m", "tmpfs", str(mnt))
        data_dir = mnt / "data"
        data_dir.mkdir()
        svc = Service(data_dir, args.model)
        try:
            svc.start()
            result["disk_full"] = disk_full(args, work, mnt, data_dir, svc)
            result["read_only"] = read_only(args, work, mnt, data_dir, svc)
        finally:
            result["processes_left_30s_after_sigterm"] = svc.stop()
            with contextlib.suppress(subprocess.CalledProcessError):
                mount("-o", "remount,rw", str(mnt))
            subprocess.run(["umount", "-l", str(mnt)], check=False)
    print(json.dumps(result, indent=2))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "faults.json").write_text(json.dumps(result, indent=2) + "\n")
    bad = [p for p in ("disk_full", "read_only")
           if result[p]["failed"] or result[p]["lost"] or result[p]["not_scored"]]
    return 1 if bad else 0


def _outcome(data_dir: Path, files: list[Path], acked: set[Path], n: int, timeout: float
             ) -> dict[str, Any]:
    counts = wait_scored(data_dir, n, timeout)
    wanted = {sop_of(f) for f in acked}
    st = counts["statuses"]
    return {"acknowledged": len(acked), "stored": len(counts["sops"]), "statuses": st,
            "failed": st.get("failed", 0), "lost": len(wanted - counts["sops"]),
            "not_scored": n - st.get("scored", 0) - st.get("needs-check", 0)}


def disk_full(args: argparse.Namespace, work: Path, mnt: Path, data_dir: Path,
              svc: Service) -> dict[str, Any]:
    files = make_instances(work / "full", args.studies)
    acked = send(svc, files)
    filler = mnt / "filler.bin"
    filled = fill(filler)
    time.sleep(3)
    during = health(svc)
    time.sleep(max(0.0, args.hold - 3))
    during_counts = worklist_counts(data_dir)["statuses"]
    mount("-o", f"remount,size={args.size_mb * 4}m", str(mnt))
    resent_rounds = resend_until_acked(svc, files, acked)
    after = health(svc)
    out = _outcome(data_dir, files, acked, args.studies, timeout=900)
    return {"filler_mb": round(filled / 2**20, 1), "health_while_full": during,
            "statuses_while_full": during_counts, "resend_rounds": resent_rounds,
            "health_after": after, **out}


def read_only(args: argparse.Namespace, work: Path, mnt: Path, data_dir: Path,
              svc: Service) -> dict[str, Any]:
    """The worklist on a file system that is read-only, then writable again.

    The kernel refuses a read-only remount of a tmpfs that processes have written to
    ("mount point is busy"), so the data folder is copied to a fresh tmpfs, that one is
    made read-only before anything opens it, and the service is started on it.
    """
    files = make_instances(work / "ro", 10)
    svc.stop()
    ro_mnt = work / "mnt-ro"
    ro_mnt.mkdir()
    mount("-t", "tmpfs", "-o", f"size={args.size_mb * 4}m", "tmpfs", str(ro_mnt))
    try:
        subprocess.run(["cp", "-a", str(data_dir), str(ro_mnt / "data")], check=True)
        mount("-o", "remount,ro", str(ro_mnt))
        ro_svc = Service(ro_mnt / "data", args.model, log_dir=work)
        try:
            ro_svc.start()
            acked = send(ro_svc, files)
            refused_while_ro = len(files) - len(acked)
            time.sleep(3)
            during = health(ro_svc)
            mount("-o", "remount,rw", str(ro_mnt))
            time.sleep(3)
            resent_rounds = resend_until_acked(ro_svc, files, acked)
            after = health(ro_svc)
            out = _outcome(ro_mnt / "data", files, acked, args.studies + len(files),
                           timeout=900)
        finally:
            left = ro_svc.stop()
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            mount("-o", "remount,rw", str(ro_mnt))
        subprocess.run(["umount", "-l", str(ro_mnt)], check=False)
    return {"started_on_read_only": True, "refused_while_read_only": refused_while_ro,
            "health_while_read_only": during, "resend_rounds": resent_rounds,
            "health_after": after, "processes_left_30s_after_sigterm": left, **out}


if __name__ == "__main__":
    sys.exit(main())
