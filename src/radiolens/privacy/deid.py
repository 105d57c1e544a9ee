"""De-identify DICOM files: the header with dicognito, the pixels checked with OCR.

The header follows the attribute classes of the DICOM PS3.15 Basic Application Level
Confidentiality Profile through `dicognito <https://github.com/blairconrad/dicognito>`_
(MIT): person names, patient and request ids, UIDs (remapped consistently), dates and
times (shifted by one offset per run), addresses, institutions and equipment are
replaced; a few identifying attributes are removed. radiolens then removes what
dicognito keeps and the profile removes: private tags, overlay and curve groups and
free-text (LT/ST/UT) attributes; removes any remaining text element that still contains
one of the instance's original identifiers; writes a fresh file meta; and sets
*Patient Identity Removed* and *De-identification Method*.

The same salt gives the same pseudonyms and UIDs, so two runs (or two folders) with one
salt stay linkable; without a salt each run draws a random one.

The pixels are not changed: each output image is checked for burned-in text with
Tesseract (:mod:`radiolens.privacy.ocr`), and any image where text is suspected, or whose
*Burned In Annotation* is ``YES``, is listed in the report and keeps
*Patient Identity Removed* = ``NO``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from radiolens.errors import ConfigError, InputFormatError, MissingDependencyError
from radiolens.privacy.ocr import DEFAULT_MIN_CHARS, DEFAULT_MIN_CONFIDENCE, TextDetector

__all__ = [
    "REPORT_CSV",
    "REPORT_JSON",
    "Deidentifier",
    "DeidentifyReport",
    "FileOutcome",
    "check_paths",
]

logger = logging.getLogger(__name__)

REPORT_JSON = "deidentify_report.json"
REPORT_CSV = "deidentify_report.csv"
REPORT_VERSION = 1

#: Status of an output file in the report.
OK = "ok"
SUSPECTED = "burned-in text suspected"
DECLARED = "burned-in annotation declared"
NOT_CHECKED = "pixel data not checked"

_FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})
#: VRs searched for a leftover identifier (numbers, times and UIDs are not: dicognito
#: remaps UIDs, and a short numeric id equals a number or a UID's digits by chance).
_TEXT_VRS = frozenset({"AE", "CS", "DA", "DT", "LO", "PN", "SH", "UC", "UR"})
#: Text VRs searched for an identifier anywhere in the value (others: the whole value).
_WORDY_VRS = frozenset({"AE", "LO", "PN", "SH", "UC", "UR"})
_ID_KEYWORDS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "PatientBirthDate",
                "StudyID", "IssuerOfPatientID")
_PN_KEYWORDS = ("PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
                "ReferringPhysicianName")


@dataclass
class FileOutcome:
    """What happened to one DICOM file (no patient data, no input path).

    Attributes:
        output: the written file, relative to the output folder.
        status: ``ok``, ``burned-in text suspected``, ``burned-in annotation declared``
            or ``pixel data not checked``.
        flagged: whether the file needs a person to look at its pixels before it is shared.
        burned_in_annotation: the header's *Burned In Annotation* as received ("" if absent).
        ocr: ``clean``, ``text found``, ``off``, ``no pixel data`` or ``failed: <reason>``.
        ocr_words: words OCR counted (above the thresholds).
        ocr_max_confidence: their highest Tesseract confidence.
        ocr_boxes: ``[left, top, width, height]`` of each word, for masking.
        patient_identity_removed: the value written (``YES`` or ``NO``).
    """

    output: str
    status: str
    flagged: bool
    burned_in_annotation: str
    ocr: str
    ocr_words: int = 0
    ocr_max_confidence: float = 0.0
    ocr_boxes: list[list[int]] = field(default_factory=list)
    patient_identity_removed: str = "NO"


@dataclass
class DeidentifyReport:
    """The outcome of a run: one :class:`FileOutcome` per written file, and what was skipped.

    ``skipped`` (non-DICOM files) and ``failed`` (DICOM files that could not be
    de-identified) hold input paths, for the terminal only: :meth:`write` leaves them out
    of the files it writes, since input names often carry patient names.
    """

    files: list[FileOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    ocr: bool = True
    salted: bool = False

    @property
    def flagged(self) -> list[FileOutcome]:
        """The files a person must check (burned-in text suspected or declared, unchecked)."""
        return [f for f in self.files if f.flagged]

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """Write ``deidentify_report.json`` and ``deidentify_report.csv`` into ``out_dir``."""
        from radiolens import __version__

        doc = {
            "format": "radiolens-deidentify-report",
            "version": REPORT_VERSION,
            "radiolens_version": __version__,
            "ocr": self.ocr,
            "salted": self.salted,
            "n_written": len(self.files),
            "n_flagged": len(self.flagged),
            "n_skipped_not_dicom": len(self.skipped),
            "n_failed": len(self.failed),
            "files": [asdict(f) for f in self.files],
        }
        json_path = out_dir / REPORT_JSON
        _write_text(json_path, json.dumps(doc, indent=2) + "\n")
        buffer = io.StringIO()
        columns = ["output", "status", "flagged", "burned_in_annotation", "ocr", "ocr_words",
                   "ocr_max_confidence", "patient_identity_removed"]
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for f in self.files:
            writer.writerow(asdict(f))
        csv_path = out_dir / REPORT_CSV
        _write_text(csv_path, buffer.getvalue())
        return json_path, csv_path


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def check_paths(input_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]
                ) -> tuple[Path, Path]:
    """Resolve and check the input and output of a run.

    Raises:
        InputFormatError: the input does not exist.
        ConfigError: the output folder is the input folder, lies inside it, or is a file.
    """
    src = Path(input_path)
    if not src.exists():
        raise InputFormatError("no such file or folder; check the path", str(src))
    dst = Path(out_dir)
    src_r, dst_r = src.resolve(), dst.resolve()
    if src.is_dir() and dst_r.is_relative_to(src_r):
        raise ConfigError(f"the output folder {dst} lies inside the input folder {src}; choose "
                          "an output folder outside it, so no de-identified file is mistaken "
                          "for an input (or the reverse)")
    if dst.exists() and not dst.is_dir():
        raise ConfigError(f"the output {dst} is a file; give a folder")
    if src.is_file() and src_r.parent == dst_r:
        logger.warning("writing into the input file's folder %s", dst)
    return src_r, dst_r


def _iter_files(src: Path) -> Iterator[Path]:
    if src.is_file():
        yield src
        return
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _identifiers(ds: Any) -> list[str]:
    """The instance's original identifying strings (ids, birth date, name parts)."""
    found: set[str] = set()
    for keyword in _ID_KEYWORDS:
        value = ds.get(keyword)
        for v in _values(value):
            text = str(v or "").strip()
            if len(text) >= 3:
                found.add(text.lower())
    for keyword in _PN_KEYWORDS:
        value = ds.get(keyword)
        for v in _values(value):
            text = str(v or "").strip()
            if not text:
                continue
            if len(text) >= 3:
                found.add(text.lower())
            for part in text.replace("=", "^").split("^"):
                if len(part.strip()) >= 3:
                    found.add(part.strip().lower())
    return sorted(found, key=len, reverse=True)


def _values(value: Any) -> list[Any]:
    from pydicom.multival import MultiValue

    return list(value) if isinstance(value, MultiValue | list | tuple) else [value]


class Deidentifier:
    """De-identifies DICOM files into a folder of pseudonymous copies.

    Args:
        salt: seeds the pseudonyms, UID remapping and date shift; the same salt gives the
            same output for the same input. ``None`` draws a random one (each run differs).
        ocr: check each image for burned-in text with Tesseract.
        min_confidence: Tesseract confidence (0-100) a word needs to count.
        min_chars: letters or digits a word needs to count.

    Example:
        >>> deid = Deidentifier(salt="project-42").load()     # doctest: +SKIP
        >>> report = deid.run("incoming/", "shareable/")       # doctest: +SKIP
        >>> [f.output for f in report.flagged]                 # doctest: +SKIP
        []
    """

    def __init__(self, salt: str | None = None, *, ocr: bool = True,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 min_chars: int = DEFAULT_MIN_CHARS) -> None:
        self.salt = salt
        self.ocr = ocr
        self.min_confidence = min_confidence
        self.min_chars = min_chars

    def load(self) -> Deidentifier:
        """Build the anonymizer (and check Tesseract when ``ocr`` is on).

        Raises:
            MissingDependencyError: dicognito, pydicom, pytesseract or Tesseract is missing.
        """
        try:
            import dicognito
            from dicognito.anonymizer import Anonymizer
        except ImportError:
            raise MissingDependencyError("dicognito", "privacy") from None
        self.anonymizer_ = Anonymizer(seed=self.salt)
        self.dicognito_version_ = str(getattr(dicognito, "__version__", "?"))
        self.detector_ = (TextDetector(self.min_confidence, self.min_chars).load()
                          if self.ocr else None)
        return self

    # -- one dataset ----------------------------------------------------------------

    def deidentify_dataset(self, ds: Any) -> None:
        """De-identify the header of ``ds`` in place (the pixels are not touched)."""
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

        if not hasattr(self, "anonymizer_"):
            self.load()
        from radiolens import __version__

        identifiers = _identifiers(ds)
        meta = getattr(ds, "file_meta", None)
        transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        if not transfer_syntax:
            implicit = getattr(ds, "original_encoding", (True, True))[0]
            transfer_syntax = str(ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
        # a fresh file meta: the sender's AE titles and private meta go
        new_meta = FileMetaDataset()
        new_meta.TransferSyntaxUID = UID(transfer_syntax)
        if "SOPClassUID" in ds:
            new_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        if "SOPInstanceUID" in ds:
            new_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta = new_meta
        self.anonymizer_.anonymize(ds)
        ds.remove_private_tags()
        self._strip(ds, identifiers)
        ds.DeidentificationMethod = [
            f"radiolens {__version__} deidentify",
            f"dicognito {self.dicognito_version_}",
            "private tags, overlays, free text removed",
            "dates shifted",
        ]

    @staticmethod
    def _strip(ds: Any, identifiers: list[str]) -> None:
        """Remove overlays, curves, free text, and text that still holds an identifier."""
        doomed: list[tuple[Any, Any]] = []

        def visit(dataset: Any, elem: Any) -> None:
            group = elem.tag.group
            overlay_or_curve = 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF
            if overlay_or_curve or elem.VR in _FREE_TEXT_VRS:
                doomed.append((dataset, elem.tag))
            elif elem.VR in _TEXT_VRS and identifiers and elem.value is not None:
                text = str(elem.value).lower()
                if elem.VR in _WORDY_VRS:  # names and ids may sit inside a longer text
                    leaked = any(ident in text for ident in identifiers)
                else:  # dates and codes: only the whole value
                    leaked = any(text == ident for ident in identifiers) or any(
                        str(v).strip().lower() in identifiers for v in _values(elem.value))
                if leaked:
                    doomed.append((dataset, elem.tag))

        ds.walk(visit)
        for dataset, tag in doomed:
            if tag in dataset:
                del dataset[tag]

    # -- files ------------------------------------------------------------------------

    def run(self, input_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]
            ) -> DeidentifyReport:
        """De-identify a DICOM file or a folder (recursively) into ``out_dir``.

        Outputs go to ``out_dir/<new StudyInstanceUID>/<new SOPInstanceUID>.dcm`` and the
        report to ``out_dir/deidentify_report.{json,csv}``. Non-DICOM files are skipped
        and listed in :attr:`DeidentifyReport.skipped`.

        Raises:
            InputFormatError: the input is missing, or holds no DICOM file.
            ConfigError: the output folder lies inside the input folder.
        """
        if not hasattr(self, "anonymizer_"):
            self.load()
        import pydicom
        from pydicom.errors import InvalidDicomError

        src, dst = check_paths(input_path, out_dir)
        report = DeidentifyReport(ocr=self.ocr, salted=self.salt is not None)
        dst.mkdir(parents=True, exist_ok=True)
        n_warnings = 0
        for path in _iter_files(src):
            # pydicom's validation warnings quote the values (names, ids): count them,
            # never show them
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    ds = pydicom.dcmread(path, force=path.suffix.lower() in (".dcm", ".dicom"))
                    if "SOPInstanceUID" not in ds:
                        raise InvalidDicomError("no SOP Instance UID")
                except (InvalidDicomError, EOFError, OSError, ValueError, TypeError,
                        KeyError, AttributeError, IndexError, NotImplementedError):
                    report.skipped.append(str(path))
                    continue
                try:
                    report.files.append(self._one(ds, dst))
                except Exception as exc:  # a value dicognito or pydicom cannot handle
                    # only the exception type: messages may quote the patient's data
                    report.failed.append((str(path), type(exc).__name__))
            n_warnings += len(caught)
        if n_warnings:
            logger.info("%d warnings from pydicom/dicognito not shown (they may quote "
                        "patient data)", n_warnings)
        if not report.files and not report.failed:
            raise InputFormatError("holds no DICOM file (nothing to de-identify)", str(src))
        report.write(dst)
        logger.debug("de-identified %d files (%d flagged, %d skipped, %d failed)",
                    len(report.files), len(report.flagged), len(report.skipped),
                    len(report.failed))
        return report

    def _one(self, ds: Any, dst: Path) -> FileOutcome:
        from radiolens.imaging import write_dicom_atomic

        declared = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
        self.deidentify_dataset(ds)
        study = str(ds.get("StudyInstanceUID", "") or "no-study").strip()
        relative = Path(study) / f"{str(ds.SOPInstanceUID).strip()}.dcm"
        out = dst / relative
        write_dicom_atomic(ds, out)  # written once to check what will be shared

        ocr, words, conf, boxes = self._check_pixels(ds, out)
        if declared == "YES":
            status, flagged = DECLARED, True
        elif ocr == "text found":
            status, flagged = SUSPECTED, True
        elif ocr.startswith("failed"):
            status, flagged = NOT_CHECKED, True
        elif ocr == "off" and declared != "NO" and "PixelData" in ds:
            status, flagged = NOT_CHECKED, False
        else:
            status, flagged = OK, False
        removed = "YES" if status == OK else "NO"
        ds.PatientIdentityRemoved = removed
        if ocr == "text found":
            ds.BurnedInAnnotation = "YES"
        write_dicom_atomic(ds, out)
        return FileOutcome(output=relative.as_posix(), status=status, flagged=flagged,
                           burned_in_annotation=declared, ocr=ocr, ocr_words=words,
                           ocr_max_confidence=round(conf, 1),
                           ocr_boxes=[list(b) for b in boxes],
                           patient_identity_removed=removed)

    def _check_pixels(self, ds: Any, out: Path
                      ) -> tuple[str, int, float, tuple[tuple[int, int, int, int], ...]]:
        if "PixelData" not in ds:
            return "no pixel data", 0, 0.0, ()
        if self.detector_ is None:
            return "off", 0, 0.0, ()
        from radiolens.errors import ImageReadError
        from radiolens.imaging import read_image

        try:
            pixels = read_image(out).pixels
        except ImageReadError as exc:
            reason = str(exc).replace(f"{out}: ", "")
            return f"failed: {reason}"[:200], 0, 0.0, ()
        found = self.detector_.detect(pixels)
        return ("text found" if found.text_found else "clean", found.n_words,
                found.max_confidence, found.boxes)
