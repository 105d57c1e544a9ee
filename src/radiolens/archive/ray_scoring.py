"""Score files with Ray Data (``radiolens predict --ray [ADDRESS]``).

The pipeline: the file list becomes a dataset of ``(path, known hash)`` rows, and
``map_batches`` with an actor pool of predictors (each loads the model once) hashes,
skips, reads, preprocesses and scores each batch with :func:`score_chunk`, the step every
other path uses; the driver receives the results in input order and writes them with the
same writer. Reading runs in the actors rather than in a task step of its own: Ray fuses
such a step into the actors anyway (same resources), and this way the model inputs are
never copied through Arrow.

Paths must be readable under the same name on every node (shared storage).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from radiolens.archive.ray_runtime import import_ray, pool_size, worker_failure
from radiolens.archive.scoring import (
    ChunkResult,
    Item,
    PredictorSpec,
    cached_predictor,
    score_chunk,
)
from radiolens.archive.table import FileScore
from radiolens.errors import ConfigError

__all__ = ["RayScorer", "ScoreActor"]

logger = logging.getLogger(__name__)


class ScoreActor:
    """Ray Data actor: one predictor, loaded once, scores batches of ``path``/``known``
    rows; records the node it runs on."""

    def __init__(self, spec: PredictorSpec, hashing: bool = True, base: str | None = None
                 ) -> None:
        import ray

        self.predictor = cached_predictor(spec)
        self.hashing = hashing
        self.base = base  # the driver's folder: relative paths are relative to it
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        items = list(zip(batch["path"].tolist(), batch["known"].tolist(), strict=True))
        result = score_chunk(self.predictor, items, self.hashing, self.base)
        n, labels = len(result.scores), len(self.predictor.labels)
        probs = np.zeros((n, labels), np.float64)
        calls = np.zeros((n, labels), bool)
        for i, s in enumerate(result.scores):
            if s.probabilities is not None and s.calls is not None:
                probs[i], calls[i] = s.probabilities, s.calls
        # plain string columns: Arrow stores them as such (object columns are pickled)
        return {"path": np.array([s.path for s in result.scores], dtype=str),
                "sha256": np.array([s.sha256 for s in result.scores], dtype=str),
                "error": np.array([s.error or "" for s in result.scores], dtype=str),
                "probs": probs, "calls": calls,
                "node": np.array([self.node] * n, dtype=str)}


def _scores(batch: dict[str, Any]) -> list[FileScore]:
    out = []
    for path, sha, error, probs, calls in zip(
            batch["path"].tolist(), batch["sha256"].tolist(), batch["error"].tolist(),
            batch["probs"].tolist(), batch["calls"].tolist(), strict=True):
        if error:
            out.append(FileScore(path, sha, error=error))
        else:
            out.append(FileScore(path, sha, tuple(probs), tuple(bool(c) for c in calls)))
    return out


class RayScorer:
    """Scores files on a Ray cluster with Ray Data (inside
    :func:`~radiolens.archive.ray_runtime.ray_session`).

    Args:
        spec: the predictor each actor loads (``threads``: the CPUs each actor takes).
        workers: actors in the pool (default: the cluster's CPUs / threads).
        batch_size: files per Ray Data batch.
        hashing: hash files (for the ``sha256`` column and for skipping).

    After :meth:`score`, ``nodes_`` counts the files each Ray node scored.
    """

    def __init__(self, spec: PredictorSpec, workers: int | None = None, batch_size: int = 32,
                 hashing: bool = True) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be at least 1, not {workers}")
        self.spec = spec
        self.workers = workers
        self.batch_size = batch_size
        self.hashing = hashing
        self.nodes_: Counter[str] = Counter()

    def score(self, items: Sequence[Item]) -> Iterator[ChunkResult]:
        """Chunk results (one per Ray Data batch) in input order; files skipped because
        they were scored before are counted in a last, empty chunk."""
        ray = import_ray()
        if not items:
            return
        cpus = float(self.spec.threads or 1)
        size = pool_size(ray, self.workers, cpus)
        # enough batches, and blocks, for every actor to get work even on small inputs
        batch = max(1, min(self.batch_size, math.ceil(len(items) / size)))
        ds = ray.data.from_items([{"path": p, "known": k} for p, k in items],
                                 override_num_blocks=math.ceil(len(items) / batch))
        ds = ds.map_batches(ScoreActor, batch_size=batch, batch_format="numpy",
                            fn_constructor_kwargs={"spec": self.spec, "hashing": self.hashing,
                                                   "base": os.getcwd()},
                            num_cpus=cpus,
                            compute=ray.data.ActorPoolStrategy(size=size))
        logger.info("Ray Data: %d file(s), %d actor(s) of %g CPU each", len(items), size, cpus)
        seen = 0
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                scores = _scores(batch)
                seen += len(scores)
                self.nodes_.update(batch["node"].tolist())
                yield ChunkResult(scores)
        except ray.exceptions.RayError as exc:
            raise worker_failure(exc, "the model") from None
        if seen < len(items):
            yield ChunkResult([], len(items) - seen)
