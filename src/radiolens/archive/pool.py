"""Score files with a pool of processes on this machine (``radiolens predict --workers N``).

Each process loads its own predictor once (one thread each by default, so N processes use
N cores without oversubscribing them) and scores chunks of files; at most ``2 * N`` chunks
are in flight, so memory stays bounded however many files there are, and results come
back in input order as soon as each chunk is done.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
from collections import deque
from collections.abc import Iterable, Iterator, Sized
from concurrent.futures import Future, ProcessPoolExecutor

from radiolens.archive.scoring import (
    ChunkResult,
    Item,
    PredictorSpec,
    cached_predictor,
    chunks,
    score_chunk,
)
from radiolens.errors import ConfigError, RadiolensError

__all__ = ["PoolScorer"]


class PoolScorer:
    """Scores chunks of files in ``workers`` processes.

    Args:
        spec: the predictor each process loads.
        workers: the number of processes.
        chunk_size: files per chunk sent to a process.
        hashing: hash files (for the ``sha256`` column and for skipping).

    Example:
        >>> scorer = PoolScorer(PredictorSpec("builtin:pneumonia-kermany"), workers=2)
        >>> for result in scorer.score([("a.png", ""), ("b.png", "")]):  # doctest: +SKIP
        ...     print(result.scores)
    """

    def __init__(self, spec: PredictorSpec, workers: int, chunk_size: int = 32,
                 hashing: bool = True) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, not {workers}")
        self.spec = spec
        self.workers = workers
        self.chunk_size = chunk_size
        self.hashing = hashing

    def score(self, items: Iterable[Item]) -> Iterator[ChunkResult]:
        """Chunk results in input order."""
        size = self.chunk_size
        if isinstance(items, Sized):  # few files: smaller chunks, so every process has some
            size = max(1, min(size, math.ceil(len(items) / self.workers)))
        todo = chunks(items, size)
        # spawn: the children start clean (no copy of this process's runtime threads)
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.spec,))
        pending: deque[Future[ChunkResult]] = deque()
        try:
            while True:
                while len(pending) < 2 * self.workers:
                    chunk = next(todo, None)
                    if chunk is None:
                        break
                    pending.append(pool.submit(_score, chunk, self.hashing))
                if not pending:
                    break
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


_worker: PredictorSpec | None = None
_setup_error: str | None = None


def _init_worker(spec: PredictorSpec) -> None:
    """Load the model once in a new worker process."""
    global _worker, _setup_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _worker = spec
    try:
        cached_predictor(spec)
    except RadiolensError as exc:  # said once, by the first chunk, in the parent
        _setup_error = str(exc)


def _score(chunk: list[Item], hashing: bool) -> ChunkResult:
    if _setup_error is not None:
        raise ConfigError(f"a worker process could not load the model: {_setup_error}")
    assert _worker is not None
    return score_chunk(cached_predictor(_worker), chunk, hashing)
