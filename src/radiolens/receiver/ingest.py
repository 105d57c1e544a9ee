"""The one ingest path: validate a DICOM instance, store it atomically, record it.

The Storage SCP (:mod:`radiolens.receiver.scp`), HTTP uploads
(:mod:`radiolens.serve.upload`) and, later, STOW-RS all call :func:`ingest_dataset`, so
an instance is accepted or refused by the same rules whichever way it came. This module
needs pydicom and the worklist, not pynetdicom. Refusals raise
:class:`~radiolens.errors.InstanceRefused` carrying a DICOM status; each boundary maps
it to its own answer (a C-STORE status, an HTTP 4xx).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from sqlalchemy import Engine

from radiolens._fs import write_atomic
from radiolens.errors import DicomElementError, InstanceRefused
from radiolens.imaging.checks import DEFAULT_MAX_PIXELS, Refusal, check_radiograph
from radiolens.imaging.elements import element_value, transfer_syntax_uid
from radiolens.worklist import record_instance

__all__ = [
    "CR_IMAGE_STORAGE",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_SOP_CLASSES",
    "DX_PRESENTATION_STORAGE",
    "DX_PROCESSING_STORAGE",
    "SECONDARY_CAPTURE_STORAGE",
    "STATUS_CANNOT_UNDERSTAND",
    "STATUS_DECODE_FAILED",
    "STATUS_MISMATCH",
    "STATUS_OUT_OF_RESOURCES",
    "STATUS_PROCESSING_FAILED",
    "STATUS_SUCCESS",
    "InstanceRefused",
    "check_radiograph",
    "ingest_dataset",
    "instance_meta",
    "refusal_status",
]

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
DX_PROCESSING_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1.1"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
#: Single-frame SOP classes accepted by default (the multi-frame SC classes are not).
DEFAULT_SOP_CLASSES: tuple[str, ...] = (
    CR_IMAGE_STORAGE,
    DX_PRESENTATION_STORAGE,
    DX_PROCESSING_STORAGE,
    SECONDARY_CAPTURE_STORAGE,
)

STATUS_SUCCESS = 0x0000
#: Storage failed (disk or database): the sender should retry later.
STATUS_OUT_OF_RESOURCES = 0xA700
#: The dataset lacks what its SOP class requires (UIDs, pixel data), is truncated, or
#: declares an image larger than the pixel cap.
STATUS_MISMATCH = 0xA900
#: A valid image radiolens cannot score (colour, multi-frame).
STATUS_CANNOT_UNDERSTAND = 0xC001
#: The dataset could not be decoded.
STATUS_DECODE_FAILED = 0xC210
#: An unexpected error in the receiver.
STATUS_PROCESSING_FAILED = 0xC211

_STATUS_OF_KIND = {
    "invalid": STATUS_MISMATCH,
    "too-large": STATUS_MISMATCH,
    "unsupported": STATUS_CANNOT_UNDERSTAND,
}

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def refusal_status(refusal: Refusal) -> int:
    """The C-STORE status for a :class:`~radiolens.imaging.checks.Refusal`."""
    return _STATUS_OF_KIND[refusal.kind]


def instance_meta(ds: Dataset) -> dict[str, Any]:
    """Return the worklist fields of a dataset (see :func:`radiolens.worklist.record_instance`).

    Raises:
        DicomElementError: one of the fields cannot be decoded.
    """

    def text(keyword: str) -> str | None:
        value = element_value(ds, keyword)
        return str(value).strip() or None if value is not None else None

    return {
        "sop_instance_uid": text("SOPInstanceUID"),
        "study_instance_uid": text("StudyInstanceUID"),
        "series_instance_uid": text("SeriesInstanceUID"),
        "sop_class_uid": text("SOPClassUID"),
        "patient_id": text("PatientID"),
        "patient_name": text("PatientName"),
        "patient_sex": text("PatientSex"),
        "patient_birth_date": text("PatientBirthDate"),
        "accession_number": text("AccessionNumber"),
        "study_date": text("StudyDate"),
        "modality": text("Modality"),
        "study_description": text("StudyDescription"),
    }


def _check_uid(ds: Dataset, keyword: str) -> str:
    value = str(element_value(ds, keyword, "")).strip()
    if not value:
        raise InstanceRefused(STATUS_MISMATCH, f"no {keyword}")
    if len(value) > 64 or not _UID.match(value):
        raise InstanceRefused(STATUS_MISMATCH, f"invalid {keyword} (not a UID of at most 64 "
                                               "digits and dots)")
    return value


def _validate(ds: Dataset, accepted: frozenset[str], transfer_syntax: str,
              max_pixels: int) -> None:
    """Raise :class:`InstanceRefused` unless ``ds`` is an instance radiolens accepts."""
    sop_class = str(element_value(ds, "SOPClassUID", "")).strip()
    if sop_class not in accepted:
        shown = sop_class[:40] if _UID.match(sop_class) else "(invalid)"
        raise InstanceRefused(STATUS_MISMATCH, f"SOP class {shown or '(none)'} not accepted")
    _check_uid(ds, "StudyInstanceUID")
    _check_uid(ds, "SOPInstanceUID")
    refusal = check_radiograph(ds, max_pixels=max_pixels, transfer_syntax=transfer_syntax)
    if refusal is not None:
        raise InstanceRefused(refusal_status(refusal), refusal.reason)


def _transfer_syntax(ds: Dataset) -> str:
    """The dataset's transfer syntax: its file meta, else how pydicom decoded it.

    Raises:
        DicomElementError: the file meta names something that is not a transfer syntax.
    """
    found = transfer_syntax_uid(ds)
    if found is not None:
        return str(found)
    return ImplicitVRLittleEndian if ds.original_encoding[0] else ExplicitVRLittleEndian


def _encode(ds: Dataset, transfer_syntax: str) -> bytes:
    """Encode ``ds`` as a DICOM file (preamble and file meta), keeping its transfer syntax."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        new_meta = FileMetaDataset(meta) if meta is not None else FileMetaDataset()
        new_meta.TransferSyntaxUID = UID(transfer_syntax)
        ds.file_meta = new_meta
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def ingest_dataset(
    data_dir: Path,
    engine: Engine,
    ds: Dataset,
    encoded: bytes | None = None,
    accepted_sop_classes: Sequence[str] = DEFAULT_SOP_CLASSES,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[str, bool]:
    """Validate one instance, store it atomically and record it in the worklist.

    The checks: an accepted single-frame SOP class, valid Study and SOP Instance UIDs,
    and :func:`~radiolens.imaging.checks.check_radiograph` (greyscale pixel data of the
    declared size, Rows x Columns within ``max_pixels``; nothing is decoded). The file
    goes to ``data_dir/dicom/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` (kept if already
    there) through :func:`radiolens._fs.write_atomic`.

    Args:
        data_dir: the service's data directory.
        engine: the worklist engine.
        ds: the decoded dataset; its file meta (if any) gives the transfer syntax.
        encoded: the instance as a DICOM file (with file meta); None to encode ``ds``.
        accepted_sop_classes: the SOP classes accepted.
        max_pixels: the pixel cap (Rows x Columns).

    Returns:
        ``(study_instance_uid, created)``: the study the instance is recorded in, and
        False when the instance was already stored (a duplicate).

    Raises:
        InstanceRefused: the instance is invalid or one radiolens cannot score.
        OSError: the file cannot be written.
        WorklistError: the worklist cannot be written.

    Example:
        >>> ingest_dataset(Path("data"), engine, pydicom.dcmread("cxr.dcm"))  # doctest: +SKIP
        ('1.2.826.0.1.3680043.8.498.1', True)
    """
    try:
        transfer_syntax = _transfer_syntax(ds)
        _validate(ds, frozenset(accepted_sop_classes), transfer_syntax, max_pixels)
        meta = instance_meta(ds)  # before storing: every field it records must decode
    except InstanceRefused:
        raise
    except DicomElementError as exc:  # the one place an undecodable element is refused
        raise InstanceRefused(STATUS_DECODE_FAILED, f"{exc.reason}: {exc.detail}"[:200]) from exc
    except Exception as exc:  # a lazily decoded element that cannot be parsed
        raise InstanceRefused(STATUS_DECODE_FAILED, f"cannot decode dataset: {exc}"[:200]) from exc
    study_uid = str(ds.StudyInstanceUID).strip()
    sop_uid = str(ds.SOPInstanceUID).strip()
    relative = Path("dicom") / study_uid / f"{sop_uid}.dcm"
    dest = Path(data_dir) / relative
    wrote = False
    if dest.exists():
        size = dest.stat().st_size
    else:
        if encoded is None:
            try:
                encoded = _encode(ds, transfer_syntax)
            except Exception as exc:
                raise InstanceRefused(
                    STATUS_DECODE_FAILED, f"cannot encode dataset: {exc}"[:200]
                ) from exc
        write_atomic(dest, encoded)
        size, wrote = len(encoded), True
    try:
        study, created = record_instance(engine, meta=meta, path=relative, size=size)
    except BaseException:
        if wrote:  # leave no file the worklist does not know; the sender retries
            dest.unlink(missing_ok=True)
        raise
    if wrote and not created and study.study_instance_uid != study_uid:
        dest.unlink(missing_ok=True)  # already stored under another study: keep one copy
    return study.study_instance_uid, created
