"""Worker body for the multi-process claim test (importable under spawn)."""

from __future__ import annotations

import time
from pathlib import Path

from radiolens.worklist import claim_job, complete_job, make_engine


def claim_all(db_url: str, ready_dir: str, owner: str, peers: int) -> list[int]:
    """Wait for ``peers`` workers, then claim and complete jobs until none is left.

    Each worker touches ``ready-OWNER`` in ``ready_dir`` and starts when all have.
    """
    engine = make_engine(db_url)
    ready = Path(ready_dir) / f"ready-{owner}"
    ready.touch()
    deadline = time.monotonic() + 60
    while len(list(ready.parent.glob("ready-*"))) < peers and time.monotonic() < deadline:
        time.sleep(0.01)
    claimed: list[int] = []
    try:
        while (job := claim_job(engine, owner, lease_seconds=60)) is not None:
            claimed.append(job.id)
            time.sleep(0.002)  # "work" outside any transaction
            complete_job(engine, job.id, owner, model="test", findings={"x": 0.1}, priority=5)
    finally:
        engine.dispose()
    return claimed
