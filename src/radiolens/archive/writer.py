"""Write the results of an archive run as they arrive, so an interrupted run can resume.

Rows go to ``OUT.partial`` (CSV) batch by batch, each batch flushed and fsynced; when the
run finishes the partial file becomes ``OUT`` (renamed for a CSV, converted for a
``.parquet``). An interrupted run leaves ``OUT.partial`` for ``--resume``; an existing
``OUT`` stays untouched until the new one is complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from radiolens.archive.previous import PreviousRun, iter_parquet_rows, read_previous
from radiolens.errors import InputFormatError, MissingDependencyError

__all__ = ["ResultWriter", "partial_path"]

logger = logging.getLogger(__name__)


def partial_path(out: str | os.PathLike[str]) -> Path:
    """Where the rows of an unfinished run of ``out`` are kept: ``OUT.partial``."""
    p = Path(out)
    return p.with_name(p.name + ".partial")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ResultWriter:
    """The results table of a run: ``OUT.csv`` or ``OUT.parquet`` (needs pyarrow).

    Args:
        path: the output file; its suffix chooses the format.
        columns: the header (see :func:`~radiolens.archive.table.result_columns`).
        resume: keep the rows of an earlier run (its ``OUT.partial`` if it was
            interrupted, else ``OUT``) and append to them; otherwise start afresh.

    Use it as a context manager: leaving the block normally publishes ``OUT``; an
    exception (Ctrl-C included) leaves ``OUT.partial`` to resume from.

    Example:
        >>> with ResultWriter("scores.csv", cols, resume=True) as out:  # doctest: +SKIP
        ...     skip = out.previous.done
        ...     out.write(rows)
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str],
                 resume: bool = False) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.resume = resume
        self.partial = partial_path(self.path)
        self.previous = PreviousRun()
        self.rows_written = 0
        self._fh: IO[str] | None = None
        self._writer: Any = None
        self._superseded = 0

    @property
    def parquet(self) -> bool:
        """Whether ``OUT`` is written as Parquet."""
        return self.path.suffix.lower() == ".parquet"

    # ---------------------------------------------------------------- opening
    def __enter__(self) -> ResultWriter:
        self._check_destination()
        source = None
        if self.resume:
            source = self.partial if self.partial.is_file() else (
                self.path if self.path.is_file() else None)
            if source is not None:
                self.previous = read_previous(source, self.columns)
        elif self.partial.is_file():
            logger.info("replacing the unfinished %s (use --resume to continue it)",
                        self.partial)
        raw: IO[bytes]
        try:
            if source == self.partial and self.previous.good_end > 0:
                raw = self.partial.open("r+b")
                raw.truncate(self.previous.good_end)
                raw.seek(0, 2)
            elif source == self.path and not self.parquet and self.previous.good_end > 0:
                self._copy_prefix(self.path, self.previous.good_end)
                raw = self.partial.open("ab")
            else:
                raw = self.partial.open("wb")
        except OSError as exc:
            raise InputFormatError(f"cannot write: {exc.strerror or exc}",
                                   str(self.partial)) from None
        # surrogateescape: a file name that is not valid UTF-8 goes through unchanged
        self._fh = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape",
                                    newline="")
        self._writer = csv.writer(self._fh)
        if raw.tell() == 0:
            self._writer.writerow(self.columns)
            if source == self.path and self.parquet:
                self._writer.writerows(iter_parquet_rows(self.path, self.columns))
            self._sync()
            _fsync_dir(self.partial.parent)
        return self

    def _check_destination(self) -> None:
        if self.path.is_dir():
            raise InputFormatError("is a folder; give a file name for the output", str(self.path))
        if not self.path.parent.exists():
            raise InputFormatError("the output folder does not exist", str(self.path.parent))
        if self.parquet:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise MissingDependencyError("pyarrow", "scale") from None

    def _copy_prefix(self, src: Path, length: int) -> None:
        with src.open("rb") as fin, self.partial.open("wb") as fout:
            remaining = length
            while remaining > 0:
                block = fin.read(min(remaining, 1 << 20))
                if not block:
                    break
                fout.write(block)
                remaining -= len(block)

    # ---------------------------------------------------------------- writing
    def write(self, rows: Iterable[Sequence[str]]) -> int:
        """Append ``rows`` and make them durable (flush + fsync). Returns how many."""
        if self._writer is None:
            raise RuntimeError("ResultWriter is not open; use it in a with block")
        n = 0
        for row in rows:
            if row[0] in self.previous.paths:
                self._superseded += 1
            self._writer.writerow(row)
            n += 1
        if n:
            self._sync()
        self.rows_written += n
        return n

    def _sync(self) -> None:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())

    # -------------------------------------------------------------- finishing
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = self._writer = None
        if exc_type is not None:
            if self.partial.is_file():
                logger.warning("stopped early: %d row(s) kept in %s; run again with --resume "
                               "to go on", self.rows_written + self.previous.rows,
                               self.partial)
            return
        if self._superseded or self.previous.damaged:
            self._compact()
        if self.parquet:
            self._publish_parquet()
        else:
            os.replace(self.partial, self.path)
        _fsync_dir(self.path.parent)

    def _compact(self) -> None:
        """Keep the last row of each path (a file scored again replaces its old row), in
        the order paths first appeared; drop rows that do not fit the header."""
        latest: dict[str, list[str]] = {}
        with self.partial.open(encoding="utf-8", errors="surrogateescape", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                if len(row) == len(self.columns):
                    latest[row[0]] = row
        tmp = self.partial.with_name(f".{self.partial.name}.{uuid.uuid4().hex}")
        with tmp.open("w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(self.columns)
            w.writerows(latest.values())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.partial)

    def _publish_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        types = {c: (pa.float64() if c.endswith("_prob") else
                     pa.int8() if c.endswith("_call") else pa.string()) for c in self.columns}
        schema = pa.schema([(c, types[c]) for c in self.columns])
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.partial")
        try:
            reader = pacsv.open_csv(
                self.partial, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(column_types=types,
                                                     strings_can_be_null=False))
            with pq.ParquetWriter(tmp, schema) as out:
                for batch in reader:
                    out.write_batch(batch)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.partial.unlink()

