"""Cost of ``synchronous=FULL`` for the commit a C-STORE is acknowledged on.

    .venv/bin/python bench/sync_full_bench.py              # 300 instances, data folder on disk
    .venv/bin/python bench/sync_full_bench.py --dir /dev/shm --instances 1000

Records ``--instances`` one-instance studies with :func:`radiolens.worklist.record_instance`
(``FULL``: fsync of the WAL at each commit) and the same with the pragma forced to
``NORMAL`` (the previous behaviour), in fresh databases under ``--dir``; prints the
commits per second of each and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _meta(i: int) -> dict[str, str]:
    return {"sop_instance_uid": f"1.2.3.{i}", "study_instance_uid": f"1.2.{i}",
            "patient_id": f"P{i}", "study_date": "20240102", "modality": "DX"}


@contextlib.contextmanager
def _normal_only() -> Iterator[None]:
    """Make the durable transaction a plain one (the behaviour before the change)."""
    from radiolens.worklist import (
        _session,
        intake,  # where the durable commit is used
    )

    durable = intake._durable_transaction
    intake._durable_transaction = _session._transaction
    try:
        yield
    finally:
        intake._durable_transaction = durable


def _rate(folder: Path, n: int) -> float:
    from radiolens.worklist import open_worklist, record_instance

    engine = open_worklist(folder / "worklist.db")
    t0 = time.perf_counter()
    for i in range(n):
        record_instance(engine, meta=_meta(i), path=f"dicom/{i}.dcm", size=1)
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--dir", default=None, help="where the databases go (default: TMPDIR)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        with _normal_only():
            normal = _rate(Path(tmp) / "normal", args.instances)
        full = _rate(Path(tmp) / "full", args.instances)
    print(f"{args.instances} acknowledged commits in {args.dir or tempfile.gettempdir()}")
    print(f"synchronous=NORMAL: {normal:8.1f} commits/s")
    print(f"synchronous=FULL:   {full:8.1f} commits/s")
    print(f"FULL / NORMAL: {full / normal:.2f}x")


if __name__ == "__main__":
    main()
