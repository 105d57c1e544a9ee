"""Score archives of radiographs: many files, in parallel, resumable.

``radiolens predict --workers N`` (processes on this machine) and ``--ray [ADDRESS]`` (Ray
Data on a cluster; the ``scale`` extra) score with the same step as the plain command
(:func:`score_chunk`), write rows as they arrive (:class:`ResultWriter`, CSV or Parquet)
with each file's SHA-256, and with ``--resume`` skip the files already scored (same path,
same content hash).

Example:
    >>> from radiolens.archive import PoolScorer, PredictorSpec, score_files
    >>> spec = PredictorSpec("builtin:pneumonia-kermany")
    >>> summary = score_files(files, PoolScorer(spec, workers=2), "scores.csv",
    ...                       labels=["pneumonia"], resume=True)  # doctest: +SKIP
    >>> summary.scored, summary.skipped  # doctest: +SKIP
    (120, 4880)
"""

from __future__ import annotations

from radiolens.archive.hashing import file_sha256
from radiolens.archive.pool import PoolScorer
from radiolens.archive.previous import PreviousRun, read_previous
from radiolens.archive.run import ArchiveSummary, score_files
from radiolens.archive.scoring import ChunkResult, LocalScorer, PredictorSpec, score_chunk
from radiolens.archive.table import FileScore, format_row, result_columns
from radiolens.archive.writer import ResultWriter, partial_path

__all__ = ["ArchiveSummary", "ChunkResult", "FileScore", "LocalScorer", "PoolScorer",
           "PredictorSpec", "PreviousRun", "ResultWriter", "file_sha256", "format_row",
           "partial_path", "read_previous", "result_columns", "score_chunk", "score_files"]
