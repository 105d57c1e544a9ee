"""DICOM ingest rate: radiolens' receiver against Orthanc, same files, same machine.

    .venv/bin/python bench/ingest_bench.py                       # 400 instances, 3 rounds
    nice -n 19 .venv/bin/python bench/ingest_bench.py --instances 200

``--instances`` small synthetic DX radiographs (DX For Presentation, 256 x 256, 12 bits
stored, one instance per study, 6 patients) are sent with dcmtk's ``storescu`` over 1
and over ``--associations`` (default 4) concurrent associations (the files split evenly,
one ``storescu`` process each) to:

* ``orthanc``: Debian's Orthanc, in the foreground, storage in a temporary folder (a
  fresh one per run);
* ``radiolens``: :class:`radiolens.receiver.DicomReceiver` with group commit (the
  default: the worklist rows of concurrent C-STOREs share one durable transaction);
* ``radiolens-direct``: the same receiver with ``max_group=0``: one durable transaction
  (and fsync) per instance, the behaviour before group commit;
* ``pynetdicom-bare``: a pynetdicom SCP with the receiver's presentation contexts and
  network settings (largest PDU, loop delays) that answers success and stores nothing:
  the ceiling of any receiver built on pynetdicom.
* ``radiolens-pynetdicom-defaults``: the receiver with pynetdicom's own network
  settings (16 KB PDUs, a 1 ms loop delay however many associations), as before
  2026-12-07;
* ``radiolens-serial-fsync``: the receiver fsyncing each file before recording its
  worklist row (``overlap_fsync=False``), as before the fourth session of 2026-12-07
  (by default the two run at once; either way the sender is answered once both are
  durable);
* ``radiolens-x2``: two receiver processes (group commit each) listening on ONE port
  with ``SO_REUSEPORT`` (``radiolens serve --receivers 2``; the kernel spreads the
  associations), one SQLite worklist.

Every run checks zero lost: each ``storescu`` succeeded and the receiver holds every
instance (radiolens: rows in its worklist and files on disk; Orthanc: ``/statistics``;
bare: C-STOREs answered). dcmtk (storescu and Orthanc's DICOM server) runs with
``TCP_NODELAY=1``, as in ``service_bench.py``. Prints instances/s and the ratios to
Orthanc with the same number of associations (and writes them as JSON with ``--json``).
With ``--rounds N`` every target runs N times, interleaved (each round runs every
target once, Orthanc first), and the ratios are the medians of the per-round ratios: on
a shared machine a single run swings by a third, and only ratios measured side by side
mean anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STORESCU = "/usr/bin/storescu"
TARGETS = ("orthanc", "radiolens", "radiolens-direct", "pynetdicom-bare", "radiolens-x2",
           "radiolens-pynetdicom-defaults", "radiolens-serial-fsync")
#: pynetdicom's own largest PDU (what the receiver used before 1 MiB)
PYNETDICOM_MAX_PDU = 16382


def make_files(out: Path, n: int, size: int = 256) -> list[Path]:
    """``n`` one-instance DX studies (the receiver tests' synthetic radiographs)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from dicomnet.synthetic import make_dataset

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        ds = make_dataset(seed=f"ingest-bench-{i}", patient_id=f"BENCH{i % 6}", size=size)
        path = out / f"i{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def send(port: int, aet: str, files: list[Path], associations: int) -> float:
    """Send ``files`` over ``associations`` concurrent storescu processes; wall seconds.

    Raises:
        RuntimeError: a storescu failed (an instance not acknowledged with success).
    """
    env = dict(os.environ, TCP_NODELAY="1")
    chunks = [files[i::associations] for i in range(associations)]
    failures: list[str] = []

    def one(chunk: list[Path]) -> None:
        proc = subprocess.run([STORESCU, "-aec", aet, "127.0.0.1", str(port),
                               *map(str, chunk)], capture_output=True, text=True,
                              timeout=900, env=env, check=False)
        if proc.returncode != 0:
            failures.append((proc.stdout + proc.stderr)[-500:])

    threads = [threading.Thread(target=one, args=(c,)) for c in chunks if c]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{len(failures)} storescu failed: {failures[0]}")
    return elapsed


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def orthanc(work: Path) -> Iterator[tuple[int, str, Callable[[], int]]]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from dicomnet.synthetic import run_orthanc

    work.mkdir(parents=True)
    os.environ["TCP_NODELAY"] = "1"  # Orthanc's DICOM server is dcmtk too: Nagle off
    with run_orthanc(work, {}) as server:
        yield server.dicom_port, "ORTHANC", \
            lambda: int(server.call("GET", "/statistics")["CountInstances"])


@contextmanager
def radiolens(work: Path, max_group: int | None, **options: Any
              ) -> Iterator[tuple[int, str, Callable[[], int]]]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from radiolens.receiver import DicomReceiver
    from radiolens.worklist import Instance, open_worklist

    data_dir = work / "data"
    engine = open_worklist(data_dir / "worklist.db")
    kwargs: dict[str, Any] = dict(options) if max_group is None else \
        {"max_group": max_group, **options}
    receiver = DicomReceiver(data_dir, engine, host="127.0.0.1", port=_free_port(), **kwargs)

    def stored() -> int:
        with Session(engine) as session:
            rows = int(session.scalar(select(func.count()).select_from(Instance)) or 0)
        files = sum(1 for _ in (data_dir / "dicom").rglob("*.dcm"))
        return min(rows, files)

    receiver.start()
    try:
        yield receiver.port, receiver.ae_title, stored
    finally:
        if receiver.committer_ is not None:
            print(f"    group commit: {receiver.committer_.stats}", flush=True)
        receiver.stop()
        engine.dispose()


@contextmanager
def bare(_work: Path) -> Iterator[tuple[int, str, Callable[[], int]]]:
    """A pynetdicom SCP that acknowledges every C-STORE and stores nothing."""
    from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt

    from radiolens.receiver.ingest import DEFAULT_SOP_CLASSES
    from radiolens.receiver.scp import (
        BUSY_DUL_POLL_S,
        DEFAULT_MAX_PDU_SIZE,
        DUL_POLL_S,
        LoopDelays,
    )

    answered = [0]
    lock = threading.Lock()

    def on_store(_event: object) -> int:
        with lock:
            answered[0] += 1
        return 0x0000

    ae = AE(ae_title="BARE")
    ae.maximum_associations = 32
    ae.maximum_pdu_size = DEFAULT_MAX_PDU_SIZE  # the receiver's network settings
    for sop_class in DEFAULT_SOP_CLASSES:
        ae.add_supported_context(sop_class, DEFAULT_TRANSFER_SYNTAXES)
    ae.add_supported_context("1.2.840.10008.1.1")
    port = _free_port()
    delays = LoopDelays(DUL_POLL_S, BUSY_DUL_POLL_S)  # the receiver's, as the PDU size
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, on_store),
                                           (evt.EVT_CONN_OPEN, delays.opened),
                                           (evt.EVT_CONN_CLOSE, delays.closed)])
    try:
        yield port, "BARE", lambda: answered[0]
    finally:
        assert server is not None
        server.shutdown()


def _reuse_port_child(port: int, data_dir: str) -> None:
    """``--child``: one receiver process of ``radiolens-x2`` (until SIGTERM)."""
    import signal

    from radiolens.receiver import DicomReceiver
    from radiolens.worklist import make_engine

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver = DicomReceiver(data_dir, make_engine(Path(data_dir) / "worklist.db"),
                             host="127.0.0.1", port=port, reuse_port=True)
    receiver.start()
    print("ready", flush=True)
    stop.wait()
    assert receiver.committer_ is not None
    print(f"    group commit (pid {os.getpid()}): {receiver.committer_.stats}", flush=True)
    receiver.stop()


@contextmanager
def radiolens_x2(work: Path) -> Iterator[tuple[int, str, Callable[[], int]]]:
    import signal

    from radiolens.worklist import open_worklist

    data_dir = work / "data"
    open_worklist(data_dir / "worklist.db").dispose()  # the schema, once
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, __file__, "--child", str(port), str(data_dir)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a receiver process did not start")
        with radiolens_count(data_dir) as count:
            yield port, "RADIOLENS", count
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            print(out.rstrip(), flush=True)


@contextmanager
def radiolens_count(data_dir: Path) -> Iterator[Callable[[], int]]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from radiolens.worklist import Instance, make_engine

    engine = make_engine(data_dir / "worklist.db")

    def stored() -> int:
        with Session(engine) as session:
            rows = int(session.scalar(select(func.count()).select_from(Instance)) or 0)
        files = sum(1 for _ in (data_dir / "dicom").rglob("*.dcm"))
        return min(rows, files)

    try:
        yield stored
    finally:
        engine.dispose()


def run_one(target: str, files: list[Path], associations: int, work: Path) -> dict[str, object]:
    starters = {
        "orthanc": lambda: orthanc(work),
        "radiolens": lambda: radiolens(work, None),
        "radiolens-direct": lambda: radiolens(work, 0),
        "radiolens-pynetdicom-defaults": lambda: radiolens(
            work, None, max_pdu_size=PYNETDICOM_MAX_PDU, loop_delay_s=0.001,
            busy_loop_delay_s=0.001),
        "radiolens-serial-fsync": lambda: radiolens(work, None, overlap_fsync=False),
        "pynetdicom-bare": lambda: bare(work),
        "radiolens-x2": lambda: radiolens_x2(work),
    }
    with starters[target]() as (port, aet, count):
        seconds = send(port, aet, files, associations)
        stored = count()
    rate = len(files) / seconds
    row = {"target": target, "associations": associations, "seconds": round(seconds, 2),
           "per_s": round(rate, 1), "lost": len(files) - stored}
    print(f"  {target:17s} {associations} assoc.: {rate:7.1f} instances/s, "
          f"lost {row['lost']}", flush=True)
    return row


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        _reuse_port_child(int(sys.argv[2]), sys.argv[3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, default=400)
    ap.add_argument("--associations", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repeats; the "
                    "ratios are medians of the per-round ratios (default 3)")
    ap.add_argument("--targets", default="orthanc,radiolens,pynetdicom-bare,radiolens-x2",
                    help=f"comma-separated, from {', '.join(TARGETS)}")
    ap.add_argument("--dir", default=None, help="where the data go (default: TMPDIR)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    if not Path(STORESCU).exists():
        print("dcmtk's storescu is missing: apt-get install dcmtk", file=sys.stderr)
        return 2
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        print(f"unknown targets {sorted(unknown)}; choose from {TARGETS}", file=sys.stderr)
        return 2
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="radiolens-ingest-", dir=args.dir) as tmp:
        work = Path(tmp)
        files = make_files(work / "files", args.instances)
        size_kb = round(files[0].stat().st_size / 1024)
        print(f"{len(files)} DX instances of {size_kb} KB, {args.rounds} rounds", flush=True)
        ordered = ["orthanc", *(t for t in targets if t != "orthanc")] \
            if "orthanc" in targets else targets
        for rnd in range(1, args.rounds + 1):
            print(f"round {rnd}", flush=True)
            for associations in sorted({1, args.associations}):
                for target in ordered:
                    row = run_one(target, files, associations,
                                  work / f"{target}-{associations}-{rnd}")
                    rows.append({**row, "round": rnd})
    per_round: dict[str, list[float]] = {}
    for row in rows:
        base = next((float(r["per_s"]) for r in rows  # type: ignore[arg-type]
                     if r["target"] == "orthanc" and r["round"] == row["round"]
                     and r["associations"] == row["associations"]), None)
        if row["target"] != "orthanc" and base:
            key = f"{row['target']}/orthanc@{row['associations']}"
            per_round.setdefault(key, []).append(float(row["per_s"]) / base)  # type: ignore[arg-type]
    ratios = {key: round(statistics.median(values), 2) for key, values in per_round.items()}
    print(f"\nratios to Orthanc (same associations; median of {args.rounds} rounds, "
          "[lowest, highest]):")
    for key, value in ratios.items():
        print(f"  {key:32s} {value:.2f}x  [{min(per_round[key]):.2f}, "
              f"{max(per_round[key]):.2f}]")
    lost = sum(int(r["lost"]) for r in rows)  # type: ignore[call-overload]
    print(f"lost: {lost}")
    results = {"date": dt.date.today().isoformat(), "cpu_count": os.cpu_count(),
               "instances": args.instances, "instance_kb": size_kb, "rounds": args.rounds,
               "runs": rows, "ratios": ratios,
               "ratio_range": {k: [round(min(v), 2), round(max(v), 2)]
                               for k, v in per_round.items()}, "lost": lost}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
