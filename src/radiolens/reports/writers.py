"""Write label tables (CSV) and evidence (JSONL), atomically.

Output goes to ``NAME.partial`` and is renamed to ``NAME`` only when writing finished,
so a crash or Ctrl-C never leaves a truncated table that looks complete.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from radiolens.errors import InputFormatError
from radiolens.reports.labeler import ReportLabels

__all__ = ["AtomicWriter", "EvidenceWriter", "LabelTableWriter"]


class AtomicWriter:
    """A text file that appears under its name only once it is closed without error."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self._fh: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if self.path.is_dir():
            raise InputFormatError("is a folder; give a file name for the output", str(self.path))
        if not self.path.parent.exists():
            raise InputFormatError("the output folder does not exist", str(self.path.parent))
        try:
            self._fh = self._tmp.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise InputFormatError(f"cannot write: {exc.strerror or exc}", str(self.path)) from None
        return self._fh

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._fh is not None
        self._fh.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


class LabelTableWriter:
    """Writes ``id`` then one column per finding: ``1``, ``0``, ``-1`` or blank."""

    def __init__(self, fh: IO[str], columns: Sequence[str], id_column: str = "id") -> None:
        self.columns = tuple(columns)
        self._w = csv.writer(fh)
        self._w.writerow([id_column, *self.columns])

    def write(self, result: ReportLabels, id: str) -> None:
        self._w.writerow([id, *result.row(self.columns)])


class EvidenceWriter:
    """Writes one JSON object per report: id, labels, and every mention with its rule."""

    def __init__(self, fh: IO[str]) -> None:
        self._fh = fh

    def write(self, result: ReportLabels, id: str, source: str = "") -> None:
        obj: dict[str, Any] = result.to_dict()
        obj["id"] = id
        if source:
            obj["source"] = source
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
