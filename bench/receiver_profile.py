"""Where the receiver's time goes per instance: wall clock and CPU, handler part by part.

    .venv/bin/python bench/receiver_profile.py                  # 600 instances, 1 and 4 assoc.
    .venv/bin/python bench/receiver_profile.py --rounds 3 --associations 1

The same synthetic DX files as ``ingest_bench.py`` are sent with dcmtk's ``storescu``
to, interleaved in each round:

* ``radiolens``: :class:`radiolens.receiver.DicomReceiver` in this process, its defaults;
* ``radiolens-timed``: the same, its handler's parts timed (below);
* ``radiolens-no-fsync``: the same with every fsync skipped (``os.fsync`` a no-op and
  the worklist commits not fsynced). **Unsafe, for measurement only**: the difference
  to ``radiolens`` is what waiting for the disk costs;
* ``pynetdicom-bare``: a pynetdicom SCP that stores nothing (as in ``ingest_bench.py``);
* ``radiolens-loop-0.2ms``, ``radiolens-loop-1ms`` (not run by default): the receiver
  with one network-loop delay however many associations are open, instead of 0.2 ms
  while one is and 1 ms while several are (:class:`radiolens.receiver.scp.LoopDelays`).

For each it prints instances/s, this process's CPU per instance (user + system, from
``os.times``) and the senders' CPU per instance. For ``radiolens-timed`` it times, per
instance, the C-STORE handler and its parts with the wall clock and with the CPU time of
the thread running them (``time.thread_time``): ``store_instance`` (checks, worklist
fields, writing the file), ``record_instances`` (the worklist transaction, run by the
group's first handler), ``PendingFile.sync`` (the file's fsyncs, in the receiver's
fsync thread, overlapping the transaction). The handler's time outside ``ingest_dataset``
is pynetdicom decoding the dataset and encoding its file meta, and logging. Medians per
instance; the instrumentation itself costs a few microseconds per call.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ingest_bench  # noqa: E402  (the files, the senders and the targets)

TARGETS = ("radiolens", "radiolens-timed", "radiolens-no-fsync", "pynetdicom-bare",
           "radiolens-loop-0.2ms", "radiolens-loop-1ms")
#: the receiver with one network-loop delay whatever the number of associations
FIXED_LOOPS = {"radiolens-loop-0.2ms": 0.0002, "radiolens-loop-1ms": 0.001}
DEFAULT_TARGETS = ("radiolens", "radiolens-timed", "radiolens-no-fsync", "pynetdicom-bare")


class Timings:
    """Wall-clock and thread-CPU durations of wrapped calls, by name."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = collections.defaultdict(list)
        self.cpu: dict[str, list[float]] = collections.defaultdict(list)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.wall[name].append(time.perf_counter() - wall0)
                self.cpu[name].append(time.thread_time() - cpu0)

        setattr(owner, attr, timed)
        self._undo.append(lambda: setattr(owner, attr, original))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()

    def medians_ms(self) -> dict[str, tuple[float, float]]:
        return {name: (1e3 * statistics.median(self.wall[name]),
                       1e3 * statistics.median(self.cpu[name])) for name in self.wall}


@contextlib.contextmanager
def instrumented() -> Iterator[Timings]:
    from radiolens import _fs
    from radiolens.receiver import ingest, scp

    timings = Timings()
    timings.wrap(scp.DicomReceiver, "_on_store", "handler")
    timings.wrap(scp, "ingest_dataset", "ingest_dataset")
    timings.wrap(ingest, "store_instance", "store_instance")
    timings.wrap(ingest, "record_instances", "record_instances")
    timings.wrap(_fs.PendingFile, "sync", "file fsyncs")
    try:
        yield timings
    finally:
        timings.undo()


@contextlib.contextmanager
def without_fsync() -> Iterator[None]:
    """Skip every fsync (files, folders, worklist commits): unsafe, measurement only."""
    from radiolens.worklist import _session, intake

    saved = os.fsync, intake._durable_transaction
    os.fsync = lambda fd: None
    intake._durable_transaction = _session._transaction
    try:
        yield
    finally:
        os.fsync, intake._durable_transaction = saved


def run(target: str, files: list[Path], associations: int, work: Path
        ) -> dict[str, Any]:
    timings: Timings | None = None
    with contextlib.ExitStack() as stack:
        if target == "pynetdicom-bare":
            port, aet, count = stack.enter_context(ingest_bench.bare(work))
        else:
            if target == "radiolens-no-fsync":
                stack.enter_context(without_fsync())
            elif target == "radiolens-timed":
                timings = stack.enter_context(instrumented())
            options = {}
            if target in FIXED_LOOPS:
                options = {"loop_delay_s": FIXED_LOOPS[target],
                           "busy_loop_delay_s": FIXED_LOOPS[target]}
            port, aet, count = stack.enter_context(ingest_bench.radiolens(work, None, **options))
        own0, kids0 = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = ingest_bench.send(port, aet, files, associations)
        own1, kids1 = os.times(), resource.getrusage(resource.RUSAGE_CHILDREN)
        stored = count()
    own = own1.user - own0.user + own1.system - own0.system
    kids = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)
    n = len(files)
    row: dict[str, Any] = {
        "target": target, "associations": associations, "per_s": n / seconds,
        "cpu_ms": 1e3 * own / n, "sender_cpu_ms": 1e3 * kids / n, "lost": n - stored,
        "parts": timings.medians_ms() if timings is not None else {},
    }
    print(f"  {target:20s} {associations} assoc.: {row['per_s']:6.1f} instances/s, "
          f"receiver CPU {row['cpu_ms']:.2f} ms/instance, senders {row['sender_cpu_ms']:.2f}, "
          f"lost {row['lost']}", flush=True)
    for name, (wall, cpu) in row["parts"].items():
        print(f"      {name:17s} wall {wall:5.2f} ms  CPU {cpu:5.2f} ms", flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, default=600)
    ap.add_argument("--associations", default="1,4", help="comma-separated (default 1,4)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                    help=f"comma-separated, from {', '.join(TARGETS)}")
    args = ap.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    if unknown := set(targets) - set(TARGETS):
        print(f"unknown targets {sorted(unknown)}; choose from {TARGETS}", file=sys.stderr)
        return 2
    if not Path(ingest_bench.STORESCU).exists():
        print("dcmtk's storescu is missing: apt-get install dcmtk", file=sys.stderr)
        return 2
    os.environ.setdefault("TCP_NODELAY", "1")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="radiolens-rprof-") as tmp:
        files = ingest_bench.make_files(Path(tmp) / "in", args.instances)
        for number in range(1, args.rounds + 1):
            print(f"round {number}", flush=True)
            for associations in (int(a) for a in args.associations.split(",")):
                for target in targets:
                    with tempfile.TemporaryDirectory(dir=tmp) as work:
                        rows.append(run(target, files, associations, Path(work)))
    print("\nmedians over rounds:")
    for associations in sorted({r["associations"] for r in rows}):
        for target in targets:
            mine = [r for r in rows if r["target"] == target and r["associations"] == associations]
            print(f"  {target:20s} {associations} assoc.: "
                  f"{statistics.median(r['per_s'] for r in mine):6.1f} instances/s, receiver CPU "
                  f"{statistics.median(r['cpu_ms'] for r in mine):.2f} ms/instance")
    lost = sum(r["lost"] for r in rows)
    print(f"lost: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
