"""The results table of an archive run: one row per file, the columns of ``radiolens
predict`` (path, ``<label>_prob``, ``<label>_call``, error) and the file's ``sha256``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HASH_COLUMN", "FileScore", "format_row", "result_columns"]

#: The column that holds each file's content hash (what ``--resume`` compares).
HASH_COLUMN = "sha256"


@dataclass(frozen=True)
class FileScore:
    """The scores of one file, or the reason it has none.

    Attributes:
        path: the file, as given.
        sha256: the file's content hash (``""`` when it could not be read at all).
        probabilities: one probability per label, in the model's order; ``None`` on error.
        calls: one ``probability >= threshold`` per label; ``None`` on error.
        error: why the file was not scored (``""`` when it was).
    """

    path: str
    sha256: str = ""
    probabilities: tuple[float, ...] | None = None
    calls: tuple[bool, ...] | None = None
    error: str = ""


def result_columns(labels: Sequence[str], with_hash: bool = True) -> list[str]:
    """The header: ``path``, ``<label>_prob`` per label, ``<label>_call`` per label,
    ``error``, then ``sha256`` (unless ``with_hash`` is false)."""
    return ["path", *[f"{n}_prob" for n in labels], *[f"{n}_call" for n in labels], "error",
            *([HASH_COLUMN] if with_hash else [])]


def format_row(score: FileScore, n_labels: int, with_hash: bool = True) -> list[str]:
    """One table row: probabilities with 6 decimals, calls as ``0``/``1``, errors on one
    line (so a row is always one line of CSV)."""
    tail = [score.sha256] if with_hash else []
    if score.probabilities is None or score.calls is None:
        error = " ".join(score.error.split()) or "not scored"
        return [score.path, *[""] * (2 * n_labels), error, *tail]
    return [score.path, *[f"{p:.6f}" for p in score.probabilities],
            *[str(int(c)) for c in score.calls], "", *tail]
