"""Read label tables (CSV) into datalists.

A label table has an ``image`` column (a path relative to the images root, by default
the CSV's folder), label columns with values ``1`` / ``0`` / ``-1`` / blank (also ``1.0``,
``0.0``, ``True``, ``False``), and optional ``patient_id``, ``split``, ``view``, ``sex`` and
``age`` columns. Blank means "not known" and becomes ``nan`` (masked in the loss);
``-1`` (uncertain) follows the ``uncertain`` policy.

Example:
    >>> from radiolens.data import read_label_table
    >>> dl = read_label_table("/data/labels.csv", "pneumonia",
    ...                       where={"source": "kermany_pneumonia"})  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import errno
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens._suggest import choices_hint, did_you_mean
from radiolens.data.datalist import Datalist, make_item
from radiolens.errors import ConfigError, DatasetError
from radiolens.findings import CHESTXRAY14_FINDINGS, parse_label

__all__ = [
    "DERIVED_LABELS",
    "LABEL_PRESETS",
    "UNCERTAIN_POLICIES",
    "read_label_table",
    "resolve_labels",
]

logger = logging.getLogger(__name__)

#: Label names a preset expands to (``--labels pneumonia`` or ``--labels nih14``).
LABEL_PRESETS: dict[str, list[str]] = {
    "pneumonia": ["pneumonia"],
    "normal": ["normal"],
    "abnormal": ["abnormal"],
    "nih14": list(CHESTXRAY14_FINDINGS),
}
#: Labels computed from another column: ``name -> source`` with ``name = 1 - source``.
DERIVED_LABELS: dict[str, str] = {"abnormal": "normal"}
#: What an uncertain (``-1``) label becomes: ``nan`` (ignored in the loss), ``0`` or ``1``.
UNCERTAIN_POLICIES: tuple[str, ...] = ("ignore", "zeros", "ones")

#: How many missing files an error message lists before "and N more".
_SHOW_MISSING = 5
_SPLIT_ALIASES = {"training": "train", "valid": "val", "validation": "val", "dev": "val",
                  "testing": "test"}
_SEX_ALIASES = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O",
                "unknown": "", "u": "", "nan": ""}


# ---------------------------------------------------------------------------- labels


def resolve_labels(spec: str | Sequence[str], available_columns: Sequence[str], *,
                   labels_from: str = "") -> list[str]:
    """Expand a label spec into label names present in a table.

    Args:
        spec: a preset name (see :data:`LABEL_PRESETS`), a comma-separated list of column
            names and presets (``"Effusion,Pneumothorax"``), or a sequence of them.
        available_columns: the table's columns. A derived label (``abnormal``) is available
            when its source column (``normal``) is.
        labels_from: where ``spec`` came from, for the error message (e.g. ``"the default
            --labels pneumonia"``).

    Returns:
        The label names, in order, without duplicates.

    Raises:
        DatasetError: a name is neither a preset nor a column (with a did-you-mean), or
            the spec is empty.
    """
    parts = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else list(spec)
    parts = [p for p in parts if p]
    if not parts:
        raise DatasetError("no labels given; name label columns (comma-separated) or a preset: "
                           + choices_hint(LABEL_PRESETS))
    columns = list(available_columns)
    present = set(columns)
    names: list[str] = []
    for part in parts:
        if part in present or part in DERIVED_LABELS:
            expanded = [part]
        elif part in LABEL_PRESETS:
            expanded = LABEL_PRESETS[part]
        else:
            expanded = [part]
        for name in expanded:
            source = DERIVED_LABELS.get(name)
            if name not in present and (source is None or source not in present):
                raise DatasetError(_missing_label_message(name, source, columns, labels_from))
            if name in names:
                logger.debug("label %r named twice; keeping the first", name)
            else:
                names.append(name)
    return names


def _missing_label_message(name: str, source: str | None, columns: Sequence[str],
                           labels_from: str) -> str:
    """Why ``name`` is not a label of the table, and what the table does have."""
    needs = f" (derived from column {source!r}, which is missing)" if source else ""
    origin = f"; it comes from {labels_from}" if labels_from else ""
    options = [c for c in [*columns, *LABEL_PRESETS] if c != name]
    return (f"label column {name!r} is not in the table{needs}{did_you_mean(name, options)}"
            f"{origin}; available columns: {', '.join(columns) or 'none'}; presets: "
            f"{', '.join(LABEL_PRESETS)}")


def check_uncertain_policy(uncertain: str) -> str:
    """Return ``uncertain`` if it is one of :data:`UNCERTAIN_POLICIES`.

    Raises:
        ConfigError: otherwise (with a did-you-mean).
    """
    if uncertain not in UNCERTAIN_POLICIES:
        raise ConfigError(f"unknown uncertain-label policy {uncertain!r}"
                          f"{did_you_mean(uncertain, UNCERTAIN_POLICIES)}; "
                          f"{choices_hint(UNCERTAIN_POLICIES)}")
    return uncertain


class LabelParser:
    """Turns a row's label cells into a float vector, applying the uncertain policy."""

    def __init__(self, labels: Sequence[str], uncertain: str, where: str,
                 header: Sequence[str]) -> None:
        self.labels = list(labels)
        self.uncertain_value = {"ignore": math.nan, "zeros": 0.0, "ones": 1.0}[
            check_uncertain_policy(uncertain)]
        self.where = where
        # label name -> (column to read, invert?): a column of that name wins over derivation.
        present = set(header)
        self.sources: list[tuple[str, bool]] = [
            (name, False) if name in present or name not in DERIVED_LABELS
            else (DERIVED_LABELS[name], True)
            for name in self.labels
        ]

    def cell(self, text: str | None, column: str, line: int) -> float | None:
        """``1.0``/``0.0``, ``-1.0`` for uncertain, ``None`` for blank."""
        try:
            value = parse_label(text)
        except ValueError:
            raise DatasetError(
                f"column {column!r} has value {text!r}; label values must be 1, 0, -1 or "
                "blank (also 1.0, 0.0, -1.0, True, False): fix the table",
                f"{self.where}:{line}") from None
        return None if value is None else float(int(value))

    def __call__(self, row: Mapping[str, str | None], line: int
                 ) -> tuple[npt.NDArray[np.float32], bool]:
        """Return ``(vector, all_blank)``."""
        out = np.full(len(self.labels), np.nan, dtype=np.float32)
        all_blank = True
        for j, (column, invert) in enumerate(self.sources):
            value = self.cell(row.get(column), column, line)
            if value is None:
                continue
            all_blank = False
            if value < 0:
                out[j] = self.uncertain_value
            else:
                out[j] = 1.0 - value if invert else value
        return out, all_blank


# ---------------------------------------------------------------------------- fields


def norm_split(text: str | None) -> str:
    """``"train"``, ``"val"``, ``"test"`` (aliases such as ``valid`` mapped), else as given."""
    key = (text or "").strip().lower()
    return _SPLIT_ALIASES.get(key, key)


def norm_sex(text: str | None) -> str:
    """``"M"``, ``"F"``, ``"O"`` or ``""`` from the spellings data sets use."""
    key = (text or "").strip().lower()
    if key in _SEX_ALIASES:
        return _SEX_ALIASES[key]
    return "O" if key else ""


def norm_age(text: str | int | float | None) -> str:
    """Age as text without a trailing ``.0`` (``"45.0"`` -> ``"45"``); ``""`` when blank."""
    value = "" if text is None else str(text).strip()
    if value.lower() in ("", "nan", "none"):
        return ""
    if re.fullmatch(r"\d+\.0+", value):
        return value.split(".")[0]
    return value


def norm_view(text: str | None) -> str:
    """View position stripped of spaces at the ends, upper-cased (``"AP Supine"`` stays
    readable as ``"AP SUPINE"``)."""
    return (text or "").strip().upper()


# ---------------------------------------------------------------------------- rows


def open_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Open a CSV (UTF-8, BOM allowed) and return its header and ``(line, row)`` pairs.

    Raises:
        DatasetError: the file is missing, empty, or has no header.
    """
    if not path.is_file():
        raise DatasetError("label table not found; check the path", str(path))
    fh = path.open(newline="", encoding="utf-8-sig")
    reader = csv.DictReader(fh)
    try:
        header = [c.strip() for c in (reader.fieldnames or [])]
    except (csv.Error, UnicodeDecodeError) as exc:
        fh.close()
        raise DatasetError(f"cannot read the CSV header ({exc})", str(path)) from None
    if not header:
        fh.close()
        raise DatasetError("the CSV is empty (no header row)", str(path))
    reader.fieldnames = header

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with fh:
            try:
                for row in reader:
                    yield reader.line_num, row
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DatasetError(f"malformed CSV ({exc})",
                                   f"{path}:{reader.line_num}") from None

    return header, rows()


def require_column(name: str, header: Sequence[str], path: Path, what: str = "") -> None:
    """Raise :class:`DatasetError` with a did-you-mean when ``name`` is not in ``header``."""
    if name not in header:
        raise DatasetError(
            f"no {name!r} column{what}{did_you_mean(name, header)}; columns: "
            f"{', '.join(header)}", str(path))


def resolve_image(value: str, root: Path) -> Path:
    """``value`` as an absolute path, relative to ``root`` unless already absolute."""
    p = Path(value.strip())
    return (p if p.is_absolute() else root / p).absolute()


def image_file_exists(image: Path, where: str = "") -> bool:
    """Whether ``image`` is an existing file.

    A path the file system cannot hold (a name over its limit, ENAMETOOLONG) names no
    file, so it is missing like any other; the caller reports it with the missing images.

    Args:
        image: the image path.
        where: the table and row, for the error message.

    Raises:
        DatasetError: the file system cannot tell (e.g. a folder without read permission).
    """
    try:
        return image.is_file()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise DatasetError(f"cannot check image file {image} ({exc.strerror or exc}); check "
                           "that its folder exists and is readable", where or None) from None


@dataclass
class ItemCollector:
    """Collects items while reading a table, counting what is dropped and why.

    Attributes:
        source: the table or folder, for messages.
        labels: the label names.
        on_missing: ``"raise"`` (one error listing the missing image files) or ``"drop"``
            (drop them with a warning).
    """

    source: str
    labels: list[str]
    on_missing: str = "raise"
    items: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    n_all_blank: int = 0
    n_all_uncertain: int = 0
    n_no_patient: int = 0

    def __post_init__(self) -> None:
        if self.on_missing not in ("raise", "drop"):
            raise ConfigError(f"on_missing must be 'raise' or 'drop', got {self.on_missing!r}")

    def add(self, image: Path, label: npt.NDArray[np.float32], all_blank: bool, *,
            id: str, patient_id: str = "", split: str = "", sex: str = "", age: str = "",
            view: str = "", check_file: bool = True) -> None:
        """Add one row (or count it as dropped)."""
        if all_blank:
            self.n_all_blank += 1
            return
        if np.all(np.isnan(label)):
            self.n_all_uncertain += 1
            return
        if check_file and not image_file_exists(image, f"{self.source} (image {id!r})"):
            self.missing.append(str(image))
            return
        if not patient_id:
            self.n_no_patient += 1
            patient_id = str(image)
        self.items.append(make_item(str(image), label, patient_id=patient_id, split=split,
                                    id=id, sex=sex, age=age, view=view))

    def finish(self) -> Datalist:
        """Log what was dropped, raise for missing files (policy ``raise``), build the list.

        Raises:
            DatasetError: image files are missing (``on_missing="raise"``), or nothing is left.
        """
        if self.n_all_blank:
            logger.warning("%s: dropped %d rows whose selected labels %s are all blank",
                           self.source, self.n_all_blank, self.labels)
        if self.n_all_uncertain:
            logger.warning("%s: dropped %d rows whose selected labels are all uncertain (-1) "
                           "under the 'ignore' policy", self.source, self.n_all_uncertain)
        if self.n_no_patient:
            logger.warning("%s: %d images have no patient id; using the image path instead, "
                           "so a patient's images may land on both sides of a split",
                           self.source, self.n_no_patient)
        if self.missing:
            shown = ", ".join(self.missing[:_SHOW_MISSING])
            more = len(self.missing) - _SHOW_MISSING
            tail = f" and {more} more" if more > 0 else ""
            if self.on_missing == "raise":
                raise DatasetError(
                    f"{len(self.missing)} image files named in the table do not exist: "
                    f"{shown}{tail}; check the images root (--images-root; paths are "
                    "relative to it), or skip those rows with --skip-missing "
                    "(on_missing='drop' in Python)", self.source)
            logger.warning("%s: dropped %d rows whose image file does not exist, e.g. %s",
                           self.source, len(self.missing), self.missing[0])
        if not self.items:
            raise DatasetError(f"no usable images (labels {self.labels}); check the label "
                               "columns, filters and image paths", self.source)
        return Datalist(items=self.items, labels=list(self.labels), source=self.source)


# ---------------------------------------------------------------------------- table


def _parse_where(where: Mapping[str, str | Sequence[str]] | None, header: Sequence[str],
                 path: Path) -> dict[str, set[str]]:
    accepted: dict[str, set[str]] = {}
    for column, value in (where or {}).items():
        require_column(column, header, path, " to filter on")
        values = value.split(",") if isinstance(value, str) else list(value)
        accepted[column] = {v.strip() for v in values}
    return accepted


def read_label_table(
    csv_path: str | os.PathLike[str],
    labels: str | Sequence[str],
    images_root: str | os.PathLike[str] | None = None,
    uncertain: str = "ignore",
    *,
    where: Mapping[str, str | Sequence[str]] | None = None,
    image_column: str = "image",
    on_missing: str = "raise",
    labels_from: str = "",
) -> Datalist:
    """Read a label table into a :class:`~radiolens.data.Datalist`.

    Args:
        csv_path: the CSV file.
        labels: label spec for :func:`resolve_labels` (preset, column, or comma list).
        images_root: folder the ``image`` paths are relative to (default: the CSV's folder).
        uncertain: what ``-1`` becomes: ``"ignore"`` (nan), ``"zeros"`` or ``"ones"``.
        where: keep only rows whose column has one of the given values, e.g.
            ``{"source": "kermany_pneumonia"}``; a string value may list several values
            separated by commas.
        image_column: the column holding image paths.
        on_missing: ``"raise"``: one :class:`DatasetError` listing the first missing image
            files and their count; ``"drop"``: skip those rows with a warning.
        labels_from: where ``labels`` came from, named when a label column is missing.

    Returns:
        The datalist. Rows whose selected labels are all blank (or all uncertain under
        ``"ignore"``) are dropped, and the count is logged. Without a ``patient_id``
        column (or value) the image path stands in, with a warning.

    Raises:
        DatasetError: the file or a column is missing, a label value is not 1/0/-1/blank
            (naming the file and line), image files are missing, or no row is left.
        ConfigError: unknown ``uncertain`` or ``on_missing`` option.
    """
    path = Path(csv_path)
    check_uncertain_policy(uncertain)
    header, rows = open_csv(path)
    require_column(image_column, header, path, " of image paths")
    names = resolve_labels(labels, header, labels_from=labels_from)
    accepted = _parse_where(where, header, path)
    root = Path(images_root) if images_root is not None else path.parent
    if "patient_id" not in header:
        logger.warning("%s: no 'patient_id' column; each image is treated as its own patient, "
                       "so splits cannot keep a patient's images together", path)
    parser = LabelParser(names, uncertain, str(path), header)
    collector = ItemCollector(str(path), names, on_missing)
    n_filtered = 0
    for line, row in rows:
        if accepted and not all((row.get(c) or "").strip() in v for c, v in accepted.items()):
            n_filtered += 1
            continue
        image_value = (row.get(image_column) or "").strip()
        if not image_value:
            raise DatasetError(f"empty {image_column!r} value; every row needs an image path",
                               f"{path}:{line}")
        vector, all_blank = parser(row, line)
        collector.add(
            resolve_image(image_value, root), vector, all_blank, id=image_value,
            patient_id=(row.get("patient_id") or "").strip(),
            split=norm_split(row.get("split")), sex=norm_sex(row.get("sex")),
            age=norm_age(row.get("age")), view=norm_view(row.get("view")),
            check_file=True)
    if accepted:
        logger.info("%s: %d rows did not match %s", path, n_filtered,
                    {c: sorted(v) for c, v in accepted.items()})
    dl = collector.finish()
    logger.info("%s: %d images, %d patients, labels %s", path, len(dl), len(dl.patients), names)
    return dl
