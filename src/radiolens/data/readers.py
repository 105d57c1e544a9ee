"""Readers for public chest X-ray data set layouts, and for report-mined labels.

* :func:`read_class_folders`: one folder per class (the Kermany pneumonia layout).
* :func:`read_nih`: ChestX-ray14 ``Data_Entry_2017*.csv`` and the official split lists.
* :func:`read_chexpert`: CheXpert ``train.csv`` / ``valid.csv``.
* :func:`read_report_labels`: labels from ``radiolens label`` joined to an image table
  (weak supervision).

Each returns a :class:`~radiolens.data.Datalist`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radiolens._suggest import did_you_mean
from radiolens.data.datalist import Datalist
from radiolens.data.tables import (
    ItemCollector,
    LabelParser,
    check_uncertain_policy,
    image_file_exists,
    norm_age,
    norm_sex,
    norm_split,
    norm_view,
    open_csv,
    require_column,
    resolve_image,
    resolve_labels,
)
from radiolens.errors import DatasetError
from radiolens.findings import CHESTXRAY14_FINDINGS, CheXpertObservation, Finding
from radiolens.imaging.scan import iter_image_files

__all__ = [
    "CHEXPERT_OBSERVATIONS",
    "kermany_patient_id",
    "read_chexpert",
    "read_class_folders",
    "read_nih",
    "read_report_labels",
]

logger = logging.getLogger(__name__)

#: The 14 CheXpert observation columns, in CSV order.
CHEXPERT_OBSERVATIONS: tuple[str, ...] = tuple(o.value for o in CheXpertObservation)

_SPLIT_FOLDERS = ("train", "training", "val", "valid", "validation", "test", "testing")
_KERMANY_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_KERMANY_IM = re.compile(r"^(.*?IM-\d+)(?:-\d+)+$", re.IGNORECASE)
_KERMANY_SEQUENCE = re.compile(r"^(.+)-\d+$")
_CHEXPERT_PATIENT = re.compile(r"(patient\d+)")


# ---------------------------------------------------------------------------- Kermany


def kermany_patient_id(filename: str) -> str:
    """The patient id in a Kermany file name.

    Example:
        >>> kermany_patient_id("person1_bacteria_1.jpeg")
        'person1'
        >>> kermany_patient_id("IM-0115-0001.jpeg")
        'IM-0115'
        >>> kermany_patient_id("NORMAL2-IM-1427-0001.jpeg")
        'NORMAL2-IM-1427'
        >>> kermany_patient_id("IM-0429-0001-0002.jpeg")
        'IM-0429'
    """
    stem = Path(filename).stem
    match = _KERMANY_PERSON.match(stem) or _KERMANY_IM.match(stem)
    if match:
        return match.group(1)
    match = _KERMANY_SEQUENCE.match(stem)
    return match.group(1) if match else stem


def _subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def read_class_folders(
    root: str | os.PathLike[str],
    positive: str = "PNEUMONIA",
    negative: str | Sequence[str] | None = None,
    label: str | None = None,
) -> Datalist:
    """Read a folder-per-class data set such as Kermany's pneumonia images.

    Two layouts are recognised: ``root/<split>/<CLASS>/*`` (split folders ``train``,
    ``val``, ``test``; ``valid`` and the like are mapped) and ``root/<CLASS>/*`` (no split).
    The patient id comes from the file name (:func:`kermany_patient_id`).

    Args:
        root: the data set folder.
        positive: the class folder whose images are positive (case-insensitive).
        negative: the class folder(s) read as negatives; ``None``: every other class folder.
        label: the label name; default ``positive.lower()``.

    Returns:
        A one-label datalist.

    Raises:
        DatasetError: the folder does not exist, or no class folder matches ``positive``.
    """
    base = Path(root)
    if not base.is_dir():
        raise DatasetError("folder not found; check the path", str(base))
    label_name = label or positive.lower()
    top = _subfolders(base)
    split_dirs = [d for d in top if d.name.lower() in _SPLIT_FOLDERS]
    groups = [(norm_split(d.name), d) for d in split_dirs] if split_dirs else [("", base)]
    negatives = ({negative.lower()} if isinstance(negative, str)
                 else None if negative is None else {n.lower() for n in negative})
    collector = ItemCollector(str(base), [label_name])
    class_names: set[str] = set()
    found_positive = False
    for split, folder in groups:
        for class_dir in _subfolders(folder):
            name = class_dir.name.lower()
            class_names.add(class_dir.name)
            if name == positive.lower():
                value = 1.0
                found_positive = True
            elif negatives is None or name in negatives:
                value = 0.0
            else:
                logger.info("%s: skipping class folder %s", base, class_dir)
                continue
            for file in iter_image_files(class_dir):
                collector.add(file.absolute(), np.array([value], np.float32), False,
                              id=str(file.relative_to(base)),
                              patient_id=kermany_patient_id(file.name), split=split,
                              check_file=False)
    if not found_positive:
        raise DatasetError(
            f"no class folder named {positive!r}{did_you_mean(positive, class_names)} "
            f"(found: {sorted(class_names) or 'no sub-folders'}); expected root/<CLASS>/ or "
            "root/<split>/<CLASS>/", str(base))
    return collector.finish()


# ---------------------------------------------------------------------------- NIH


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        raise DatasetError("split list not found; check split_lists_dir", str(path))
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()}


class _ImageIndex:
    """Finds ``name`` under ``root`` directly, else anywhere below it (NIH ships its PNGs
    in ``images_001/images/`` ... ``images_012/images/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_name: dict[str, Path] | None = None

    def find(self, name: str) -> Path:
        direct = resolve_image(name, self.root)
        if image_file_exists(direct, str(self.root)):
            return direct
        if self._by_name is None:
            logger.info("%s: images are not directly under the root; indexing sub-folders",
                        self.root)
            self._by_name = {p.name: p.absolute() for p in self.root.rglob("*")
                             if p.is_file()}
        return self._by_name.get(Path(name).name, direct)


def _nih_age(text: str | None) -> str:
    # Older releases write "058Y"; the 2017 CSV writes 58.
    value = (text or "").strip().rstrip("Yy")
    return str(int(value)) if value.isdigit() else norm_age(value)


def read_nih(
    data_entry_csv: str | os.PathLike[str],
    images_root: str | os.PathLike[str],
    split_lists_dir: str | os.PathLike[str] | None = None,
    labels: str | Sequence[str] = "nih14",
    *,
    on_missing: str = "raise",
) -> Datalist:
    """Read the NIH ChestX-ray14 ``Data_Entry_2017*.csv``.

    ``Finding Labels`` holds pipe-separated findings (``Effusion|Mass``) or ``No Finding``;
    every listed label is 1 and every other 0 (the NIH labels have no blanks).

    Args:
        data_entry_csv: ``Data_Entry_2017.csv`` (or ``_v2020``).
        images_root: folder holding the PNGs (directly or in sub-folders).
        split_lists_dir: folder with the official ``train_val_list.txt`` and
            ``test_list.txt``; their images get split ``"train"`` and ``"test"``.
        labels: the findings to keep: a preset (``nih14``) or comma list of NIH names.
        on_missing: ``"raise"`` or ``"drop"`` for image files that do not exist.

    Raises:
        DatasetError: a column is missing, a finding name is unknown (naming the line),
            or image files are missing.
    """
    path = Path(data_entry_csv)
    header, rows = open_csv(path)
    for column in ("Image Index", "Finding Labels", "Patient ID"):
        require_column(column, header, path, " (is this a Data_Entry_2017 CSV?)")
    names = resolve_labels(labels, [*CHESTXRAY14_FINDINGS])
    known = {*CHESTXRAY14_FINDINGS}
    split_of: dict[str, str] = {}
    if split_lists_dir is not None:
        lists = Path(split_lists_dir)
        for filename, split in (("train_val_list.txt", "train"), ("test_list.txt", "test")):
            split_of.update(dict.fromkeys(_read_list(lists / filename), split))
    index = _ImageIndex(Path(images_root))
    collector = ItemCollector(str(path), names, on_missing)
    n_unsplit = 0
    for line, row in rows:
        name = (row.get("Image Index") or "").strip()
        if not name:
            raise DatasetError("empty 'Image Index'", f"{path}:{line}")
        findings = {f.strip() for f in (row.get("Finding Labels") or "").split("|")
                    if f.strip()}
        findings.discard(Finding.NO_FINDING.value)
        unknown = findings - known
        if unknown:
            first = sorted(unknown)[0]
            raise DatasetError(
                f"unknown finding {first!r} in 'Finding Labels'{did_you_mean(first, known)}; "
                "expected the ChestX-ray14 names separated by '|', or 'No Finding'",
                f"{path}:{line}")
        vector = np.array([1.0 if n in findings else 0.0 for n in names], np.float32)
        split = split_of.get(name, "")
        if split_lists_dir is not None and not split:
            n_unsplit += 1
        patient = (row.get("Patient ID") or "").strip()
        collector.add(index.find(name), vector, False, id=name,
                      patient_id=patient.lstrip("0") or patient, split=split,
                      sex=norm_sex(row.get("Patient Gender")),
                      age=_nih_age(row.get("Patient Age")),
                      view=norm_view(row.get("View Position")))
    if n_unsplit:
        logger.warning("%s: %d images are in neither split list; their split is ''", path,
                       n_unsplit)
    return collector.finish()


# ---------------------------------------------------------------------------- CheXpert


def _chexpert_image(value: str, root: Path) -> Path:
    direct = resolve_image(value, root)
    if image_file_exists(direct, str(root)):
        return direct
    # Paths start with the release folder ("CheXpert-v1.0-small/train/..."); accept a
    # root that is that folder itself.
    parts = Path(value).parts
    if len(parts) > 1:
        inner = resolve_image(str(Path(*parts[1:])), root)
        if image_file_exists(inner, str(root)):
            return inner
    return direct


def read_chexpert(
    csv_path: str | os.PathLike[str],
    images_root: str | os.PathLike[str],
    uncertain: str = "ignore",
    labels: str | Sequence[str] | None = None,
    *,
    frontal_only: bool = False,
    on_missing: str = "raise",
) -> Datalist:
    """Read a CheXpert ``train.csv`` or ``valid.csv``.

    The patient id is the ``patientNNNNN`` part of ``Path``; the split comes from the
    path (``train`` or ``valid`` -> ``"val"``); the view is ``AP/PA``, or ``LATERAL``.

    Args:
        csv_path: the CSV file.
        images_root: the folder that holds the ``Path`` values (the one containing
            ``CheXpert-v1.0-small/``; that folder itself also works).
        uncertain: what ``-1`` becomes: ``"ignore"`` (nan), ``"zeros"`` or ``"ones"``.
        labels: observations to keep (comma list or sequence); default all 14.
        frontal_only: keep only frontal images.
        on_missing: ``"raise"`` or ``"drop"`` for image files that do not exist.

    Raises:
        DatasetError: a column is missing, a value is not 1/0/-1/blank (file and line),
            or image files are missing.
    """
    path = Path(csv_path)
    check_uncertain_policy(uncertain)
    header, rows = open_csv(path)
    require_column("Path", header, path, " (is this a CheXpert CSV?)")
    names = resolve_labels(labels if labels is not None else list(CHEXPERT_OBSERVATIONS),
                           header)
    parser = LabelParser(names, uncertain, str(path), header)
    root = Path(images_root)
    collector = ItemCollector(str(path), names, on_missing)
    n_lateral = 0
    for line, row in rows:
        value = (row.get("Path") or "").strip()
        if not value:
            raise DatasetError("empty 'Path'", f"{path}:{line}")
        frontal = (row.get("Frontal/Lateral") or "").strip().lower()
        if frontal_only and frontal == "lateral":
            n_lateral += 1
            continue
        match = _CHEXPERT_PATIENT.search(value)
        parts = [p.lower() for p in Path(value).parts]
        split = next((norm_split(p) for p in parts if p in ("train", "valid", "test")), "")
        view = norm_view(row.get("AP/PA")) or ("LATERAL" if frontal == "lateral" else "")
        vector, all_blank = parser(row, line)
        collector.add(_chexpert_image(value, root), vector, all_blank, id=value,
                      patient_id=match.group(1) if match else "", split=split,
                      sex=norm_sex(row.get("Sex")), age=norm_age(row.get("Age")), view=view)
    if n_lateral:
        logger.info("%s: skipped %d lateral images (frontal_only)", path, n_lateral)
    return collector.finish()


# ---------------------------------------------------------------------------- reports


def read_report_labels(
    report_labels_csv: str | os.PathLike[str],
    images_csv: str | os.PathLike[str],
    images_root: str | os.PathLike[str] | None = None,
    id_field: str = "id",
    labels: str | Sequence[str] | None = None,
    uncertain: str = "ignore",
    *,
    on_missing: str = "raise",
) -> Datalist:
    """Join labels mined from reports (``radiolens label`` output) to an image table.

    Args:
        report_labels_csv: CSV with an id column and finding columns (1/0/-1/blank), as
            ``radiolens label`` writes it.
        images_csv: CSV with the same id column and an ``image`` column (plus optional
            ``patient_id``, ``split``, ``view``, ``sex``, ``age``); one report may cover
            several images.
        images_root: folder the ``image`` paths are relative to (default: the image
            table's folder).
        id_field: the id column, in both tables (the report table's first column is used
            when it has no such column).
        labels: label spec (preset, column, comma list); default every finding column.
        uncertain: what ``-1`` becomes: ``"ignore"`` (nan), ``"zeros"`` or ``"ones"``.
        on_missing: ``"raise"`` or ``"drop"`` for image files that do not exist.

    Returns:
        A weak-supervision datalist. Report ids with no image, and images with no report,
        are counted and logged.

    Raises:
        DatasetError: a column is missing, a label value is bad (file and line), an id
            repeats in the report table, or nothing joins.
    """
    check_uncertain_policy(uncertain)
    report_path, image_path = Path(report_labels_csv), Path(images_csv)
    r_header, r_rows = open_csv(report_path)
    report_id = id_field if id_field in r_header else r_header[0]
    if report_id != id_field:
        logger.info("%s: no %r column; joining on its first column %r", report_path,
                    id_field, report_id)
    finding_columns = [c for c in r_header if c != report_id]
    names = resolve_labels(labels if labels is not None else finding_columns, finding_columns)
    parser = LabelParser(names, uncertain, str(report_path), r_header)
    reports: dict[str, tuple[np.ndarray, bool]] = {}
    for line, row in r_rows:
        rid = (row.get(report_id) or "").strip()
        if not rid:
            raise DatasetError(f"empty {report_id!r}", f"{report_path}:{line}")
        if rid in reports:
            raise DatasetError(f"{report_id} {rid!r} appears twice; each report needs one row",
                               f"{report_path}:{line}")
        reports[rid] = parser(row, line)

    i_header, i_rows = open_csv(image_path)
    require_column(id_field, i_header, image_path, " to join on (set id_field)")
    require_column("image", i_header, image_path, " of image paths")
    root = Path(images_root) if images_root is not None else image_path.parent
    collector = ItemCollector(f"{report_path} + {image_path}", names, on_missing)
    used: set[str] = set()
    n_no_report = 0
    for line, row in i_rows:
        rid = (row.get(id_field) or "").strip()
        image_value = (row.get("image") or "").strip()
        if not image_value:
            raise DatasetError("empty 'image' value", f"{image_path}:{line}")
        if rid not in reports:
            n_no_report += 1
            continue
        used.add(rid)
        vector, all_blank = reports[rid]
        collector.add(resolve_image(image_value, root), vector.copy(), all_blank,
                      id=image_value, patient_id=(row.get("patient_id") or "").strip(),
                      split=norm_split(row.get("split")), sex=norm_sex(row.get("sex")),
                      age=norm_age(row.get("age")), view=norm_view(row.get("view")))
    n_unmatched = len(reports) - len(used)
    if n_unmatched:
        logger.warning("%s: %d of %d report ids have no image in %s", report_path, n_unmatched,
                       len(reports), image_path)
    if n_no_report:
        logger.warning("%s: %d images have no report labels in %s", image_path, n_no_report,
                       report_path)
    return collector.finish()
