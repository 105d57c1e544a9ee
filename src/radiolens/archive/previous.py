"""Read what an earlier run wrote, to resume it: which files are scored, and where the
output's last complete row ends.

A run interrupted by Ctrl-C, a crash or a power cut leaves a table whose last line may be
cut short (or, after a power cut, padded with NUL bytes). Such a tail is dropped, not an
error: those files are scored again. A row that does not fit the header anywhere else is
ignored with a warning (its file is scored again as well).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from radiolens.archive.table import HASH_COLUMN
from radiolens.errors import ConfigError, MissingDependencyError

__all__ = ["PreviousRun", "check_header", "iter_parquet_rows", "read_previous"]

logger = logging.getLogger(__name__)

_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass
class PreviousRun:
    """The rows an earlier run left.

    Attributes:
        source: the file read (``None``: there was none).
        done: path to content hash, for every file scored without error.
        paths: every path with a row, scored or not (a new row for one supersedes it).
        rows: rows read.
        dropped: rows cut off at the end (an interrupted last line).
        damaged: rows elsewhere that do not fit the header (ignored; the table is
            rewritten without them when the run finishes).
        good_end: for a CSV, the byte offset just after the last good row: where new
            rows are appended (0: not even a header).
    """

    source: Path | None = None
    done: dict[str, str] = field(default_factory=dict)
    paths: set[str] = field(default_factory=set)
    rows: int = 0
    dropped: int = 0
    damaged: int = 0
    good_end: int = 0

    def known_hash(self, path: str) -> str:
        """The hash ``path`` was scored with, or ``""`` (score it)."""
        return self.done.get(path, "")


def check_header(found: Sequence[str], expected: Sequence[str], where: Path) -> None:
    """Raise :class:`ConfigError`, saying what to do, unless ``found`` is ``expected``."""
    if list(found) == list(expected):
        return
    hint = "give another -o, or drop --resume to replace it"
    if "path" not in found or "error" not in found:
        raise ConfigError(f"{where} is not a radiolens predict table (its columns are "
                          f"{', '.join(found[:6]) or 'none'}); {hint}")
    if HASH_COLUMN not in found:
        raise ConfigError(f"{where} has no {HASH_COLUMN} column, so its files cannot be "
                          f"recognised (it was written by an older radiolens); {hint}")
    labels = [c[:-5] for c in found if c.endswith("_prob")]
    wanted = [c[:-5] for c in expected if c.endswith("_prob")]
    raise ConfigError(f"{where} was written by a model with other labels "
                      f"({', '.join(labels) or 'none'}; this model has {', '.join(wanted)}); "
                      f"score with the same --checkpoint, or {hint}")


def _lines(fh: IO[bytes], end: list[int]) -> Iterator[str]:
    """Complete lines of ``fh`` (a final line without a newline is not yielded);
    ``end[0]`` is kept at the offset just after the last line yielded."""
    for raw in fh:
        if not raw.endswith(b"\n"):
            return
        end[0] += len(raw)
        yield raw.decode("utf-8", errors="surrogateescape")


def _read_csv(path: Path, columns: Sequence[str]) -> PreviousRun:
    prev = PreviousRun(source=path)
    n = len(columns)
    i_path, i_error, i_hash = columns.index("path"), columns.index("error"), len(columns) - 1
    with path.open("rb") as fh:
        pos = [0]
        reader = csv.reader(_lines(fh, pos))
        try:
            header = next(reader)
        except StopIteration:
            return prev  # empty, or a header cut short: start again
        except csv.Error:
            header = []
        check_header(header, columns, path)
        prev.good_end = pos[0]
        pending_bad = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:  # NUL bytes or an unclosed quote: the damaged tail
                pending_bad += 1
                break
            if len(row) != n or (row[i_error] == "" and not _SHA.fullmatch(row[i_hash])):
                pending_bad += 1
                continue
            if pending_bad:
                logger.warning("%s: ignored %d damaged row(s) before line %d; their files "
                               "are scored again", path, pending_bad, reader.line_num)
                prev.damaged += pending_bad
                pending_bad = 0
            prev.rows += 1
            prev.good_end = pos[0]
            prev.paths.add(row[i_path])
            if row[i_error] == "":
                prev.done[row[i_path]] = row[i_hash]
            else:
                prev.done.pop(row[i_path], None)
        size = fh.seek(0, 2)
    if pending_bad or size > prev.good_end:
        prev.dropped += max(pending_bad, 1)
        logger.info("%s: dropped an unfinished last row (the run was interrupted); that "
                    "file is scored again", path)
    return prev


def iter_parquet_rows(path: Path, columns: Sequence[str]) -> Iterator[list[str]]:
    """The rows of a Parquet table written by radiolens, as CSV strings."""
    pq = _pyarrow_parquet()
    table = pq.ParquetFile(path)
    check_header(table.schema_arrow.names, columns, path)
    for batch in table.iter_batches(batch_size=4096):
        cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for values in zip(*cols, strict=True):
            yield [_cell(v) for v in values]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "scale") from None
    return pq


def read_previous(path: Path, columns: Sequence[str]) -> PreviousRun:
    """What ``path`` (a CSV written by radiolens, complete or interrupted, or a Parquet
    table) holds; an empty :class:`PreviousRun` when it does not exist.

    Raises:
        ConfigError: the file is not a radiolens predict table for these columns.
    """
    if not path.is_file():
        return PreviousRun()
    if path.suffix.lower() != ".parquet":
        return _read_csv(path, columns)
    prev = PreviousRun(source=path)
    i_path, i_error, i_hash = columns.index("path"), columns.index("error"), len(columns) - 1
    for row in iter_parquet_rows(path, columns):
        prev.rows += 1
        prev.paths.add(row[i_path])
        if row[i_error] == "":
            prev.done[row[i_path]] = row[i_hash]
        else:
            prev.done.pop(row[i_path], None)
    return prev
