"""Score files in chunks: the one scoring step that every way of running uses (this
process, a pool of processes, Ray actors), so they give the same scores by construction.

A chunk is a list of ``(path, known_hash)`` items: a file whose content hash equals the
hash it was scored with before is skipped; any other file is read, preprocessed and scored
in batches. A file that cannot be hashed, read or preprocessed becomes a row with its
error, never a crash.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from radiolens.archive.hashing import file_sha256
from radiolens.archive.table import FileScore
from radiolens.errors import RadiolensError

if TYPE_CHECKING:

    from radiolens.inference import Predictor

__all__ = ["ChunkResult", "Item", "LocalScorer", "PredictorSpec", "Prepared",
           "cached_predictor", "prepare_files", "score_chunk", "score_prepared"]

logger = logging.getLogger(__name__)

#: ``(path, hash it was scored with before, or "")``.
Item = tuple[str, str]

#: Per-file failures that become an error row instead of stopping the run.
FILE_ERRORS = (RadiolensError, OSError, ValueError)


@dataclass(frozen=True)
class PredictorSpec:
    """How to build a :class:`~radiolens.inference.Predictor`: plain values that can be
    sent to another process or machine, which loads the model itself."""

    checkpoint: str
    backend: str = "auto"
    threads: int | None = 1
    batch_size: int = 16
    precision: str = "auto"
    device: str = "cpu"

    def load(self) -> Predictor:
        """A loaded predictor with these settings."""
        from radiolens.inference import Predictor

        return Predictor(self.checkpoint, device=self.device, batch_size=self.batch_size,
                         backend=self.backend, threads=self.threads,  # type: ignore[arg-type]
                         precision=self.precision).load()  # type: ignore[arg-type]


_LOADED: dict[PredictorSpec, Predictor] = {}


def cached_predictor(spec: PredictorSpec) -> Predictor:
    """The predictor for ``spec``, loaded once per process (each worker process and each
    Ray actor holds one model)."""
    if spec not in _LOADED:
        _LOADED[spec] = spec.load()
    return _LOADED[spec]


@dataclass
class Prepared:
    """One file after reading: the model input (for a model that crops to the lungs,
    the decoded image: a chunk is segmented at once), or the reason there is none."""

    path: str
    sha256: str
    x: Any
    error: str = ""


@dataclass
class ChunkResult:
    """The scores of a chunk's files, in input order, and how many were skipped."""

    scores: list[FileScore] = field(default_factory=list)
    skipped: int = 0


def prepare_files(predictor: Predictor, items: Iterable[Item], hashing: bool = True,
                  base: str | None = None) -> tuple[list[Prepared], int]:
    """Hash, read and preprocess files; files whose hash matches are left out (counted).
    ``base``: the folder relative paths are relative to (default: the current one).

    Returns:
        The prepared files in input order, and the number skipped.
    """
    out: list[Prepared] = []
    skipped = 0
    for item in items:
        prepared = prepare_file(predictor, item, hashing, base)
        if prepared is None:
            skipped += 1
        else:
            out.append(prepared)
    return out, skipped


def prepare_file(predictor: Predictor, item: Item, hashing: bool = True,
                 base: str | None = None) -> Prepared | None:
    """Hash, read and preprocess one file; ``None`` when its hash matches (skipped)."""
    from radiolens.imaging import read_image

    path, known = item
    sha = ""
    where = os.path.join(base, path) if base else path
    try:
        if hashing:
            sha = file_sha256(where)
            if known and sha == known:
                return None
        image = read_image(where)
        return Prepared(path, sha, image if predictor.uses_lungs else
                        predictor.preprocess(image))
    except FILE_ERRORS as exc:
        return Prepared(path, sha, None, _describe(path, exc, where))


def _describe(path: str, exc: BaseException, where: str) -> str:
    """The error row's message, naming the file as given (not as opened)."""
    if isinstance(exc, RadiolensError):
        text = str(exc).replace(where, path)
        return text if path in text else f"{path}: {text}"
    if isinstance(exc, OSError):
        return f"{path}: cannot read the file: {exc.strerror or exc}"
    return f"{path}: cannot preprocess the image: {exc}"


def calls_for(predictor: Predictor, probs: Any) -> Any:
    """``probability >= threshold`` per label, for probabilities ``(N, L)``."""
    import numpy as np

    th = np.array([predictor.thresholds[n] for n in predictor.labels], np.float64)
    return np.asarray(probs, np.float64) >= th


def probabilities_to_scores(predictor: Predictor, prepared: Sequence[Prepared],
                            probs: Any) -> list[FileScore]:
    """Pair prepared files (inputs where ``x`` is set, in order) with rows of ``probs``."""
    rows = iter(zip(probs, calls_for(predictor, probs), strict=True))
    out = []
    for p in prepared:
        if p.x is None:
            out.append(FileScore(p.path, p.sha256, error=p.error))
            continue
        values, calls = next(rows)
        out.append(FileScore(p.path, p.sha256, tuple(float(v) for v in values),
                             tuple(bool(c) for c in calls)))
    return out


def predict_inputs(predictor: Predictor, inputs: Sequence[Any]) -> Any:
    """Probabilities ``(N, L)`` for model inputs, in batches of the predictor's size."""
    import numpy as np

    parts = [predictor.predict_batch(np.stack(inputs[i:i + predictor.batch_size]))
             for i in range(0, len(inputs), predictor.batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(predictor.labels)), np.float32)


def _crop_to_lungs(predictor: Predictor, prepared: Sequence[Prepared]) -> None:
    """Turn the decoded images of ``prepared`` into model inputs: their lungs segmented
    in one batch, then cropped (a file that fails gets its error)."""
    todo = [p for p in prepared if p.x is not None]
    if not todo:
        return
    try:
        masks = predictor.lung_masks([p.x for p in todo])
    except FILE_ERRORS:  # segment them one by one: each failure stays with its file
        masks = [None] * len(todo)
    for p, mask in zip(todo, masks, strict=True):
        try:
            p.x = predictor.preprocess(p.x, mask)
        except FILE_ERRORS as exc:
            p.x, p.error = None, _describe(p.path, exc, p.path)


def score_prepared(predictor: Predictor, prepared: Sequence[Prepared]) -> list[FileScore]:
    """Score prepared files in batches; files with an error keep it."""
    if predictor.uses_lungs:
        _crop_to_lungs(predictor, prepared)
    probs = predict_inputs(predictor, [p.x for p in prepared if p.x is not None])
    return probabilities_to_scores(predictor, prepared, probs)


def score_chunk(predictor: Predictor, items: Sequence[Item], hashing: bool = True,
                base: str | None = None) -> ChunkResult:
    """Hash, skip, read, preprocess and score a chunk of files (relative paths: relative
    to ``base``, default the current folder)."""
    prepared, skipped = prepare_files(predictor, items, hashing, base)
    return ChunkResult(score_prepared(predictor, prepared), skipped)


def chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


class LocalScorer:
    """Scores in this process, chunk by chunk, reading ahead.

    While a chunk is scored, ``readers`` threads hash, decode and resize the next one
    (Pillow and NumPy release the GIL), so reading overlaps inference.

    Args:
        predictor: a loaded predictor.
        chunk_size: files per chunk (results are written after each chunk).
        hashing: hash files (needed to write the ``sha256`` column and to skip).
        readers: reading threads (default 2).
    """

    def __init__(self, predictor: Predictor, chunk_size: int = 32, hashing: bool = True,
                 readers: int | None = None) -> None:
        self.predictor = predictor
        self.chunk_size = chunk_size
        self.hashing = hashing
        self.readers = readers

    def score(self, items: Iterable[Item]) -> Iterator[ChunkResult]:
        """Chunk results in input order."""
        from concurrent.futures import Future, ThreadPoolExecutor

        readers = self.readers or 2
        with ThreadPoolExecutor(readers, thread_name_prefix="radiolens-read") as pool:
            def submit(chunk: list[Item]) -> list[Future[Prepared | None]]:
                return [pool.submit(prepare_file, self.predictor, item, self.hashing)
                        for item in chunk]

            pending: list[Future[Prepared | None]] | None = None
            for chunk in chunks(items, self.chunk_size):
                upcoming = submit(chunk)  # read while the chunk before is scored
                if pending is not None:
                    yield self._finish(pending)
                pending = upcoming
            if pending is not None:
                yield self._finish(pending)

    def _finish(self, futures: list[Any]) -> ChunkResult:
        done = [f.result() for f in futures]
        prepared = [p for p in done if p is not None]
        return ChunkResult(score_prepared(self.predictor, prepared),
                           len(done) - len(prepared))
