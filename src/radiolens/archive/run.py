"""Score a list of files into a results table, resumably: the loop every scorer shares."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from radiolens.archive.scoring import ChunkResult, Item
from radiolens.archive.table import format_row, result_columns
from radiolens.archive.writer import ResultWriter

__all__ = ["ArchiveSummary", "Scorer", "score_files"]

#: Error messages kept in the summary (the table has them all).
MAX_FAILURES_KEPT = 50


class Scorer(Protocol):
    """Anything that turns ``(path, known hash)`` items into chunk results in order:
    :class:`~radiolens.archive.LocalScorer`, :class:`~radiolens.archive.PoolScorer`,
    :class:`~radiolens.archive.ray_scoring.RayScorer`."""

    def score(self, items: Sequence[Item]) -> Iterator[ChunkResult]: ...


@dataclass
class ArchiveSummary:
    """What a run did.

    Attributes:
        scored: files scored in this run.
        failed: files that could not be scored (rows with an error).
        skipped: files skipped because they were scored before with the same content.
        kept: rows kept from the earlier run.
        seconds: wall time of the scoring loop.
        failures: the first error messages (every one is in the table).
    """

    scored: int = 0
    failed: int = 0
    skipped: int = 0
    kept: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def score_files(files: Iterable[str], scorer: Scorer, output: str | os.PathLike[str],
                labels: Sequence[str], resume: bool = False,
                on_progress: Callable[[int], None] | None = None) -> ArchiveSummary:
    """Score ``files`` into ``output`` (CSV, or Parquet by suffix), rows written batch by
    batch with each file's SHA-256.

    Args:
        files: image paths (as they will appear in the ``path`` column).
        scorer: how to score (this process, a pool, Ray).
        output: the results table.
        labels: the model's labels (the table's columns).
        resume: skip files already in ``output`` (or in its unfinished ``.partial``) with
            the same path and content hash, and keep those rows.
        on_progress: called with the number of files done after each chunk.

    Raises:
        ConfigError: ``resume`` and ``output`` is not a table of this model.
    """
    summary = ArchiveSummary()
    started = time.perf_counter()
    with ResultWriter(output, result_columns(labels), resume=resume) as writer:
        prev = writer.previous
        summary.kept = prev.rows
        items = [(f, prev.known_hash(f)) for f in files]
        for chunk in scorer.score(items):
            writer.write(format_row(s, len(labels)) for s in chunk.scores)
            for s in chunk.scores:
                if s.probabilities is None:
                    summary.failed += 1
                    if len(summary.failures) < MAX_FAILURES_KEPT:
                        summary.failures.append(s.error)
                else:
                    summary.scored += 1
            summary.skipped += chunk.skipped
            if on_progress is not None:
                on_progress(len(chunk.scores) + chunk.skipped)
    summary.seconds = time.perf_counter() - started
    return summary
