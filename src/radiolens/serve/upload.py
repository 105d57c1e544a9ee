"""Turn uploaded files (DICOM, PNG, JPEG) into worklist instances.

DICOM goes through :func:`radiolens.receiver.scp.ingest_dataset`, exactly as if a PACS
had sent it. PNG and JPEG become a greyscale Secondary Capture whose UIDs derive from
the file's content, so uploading the same picture twice is recognised as a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlalchemy import Engine

from radiolens.errors import ImageReadError, InputFormatError
from radiolens.imaging import has_dicom_preamble, load_grey_array, to_secondary_capture
from radiolens.receiver.scp import (
    STATUS_DECODE_FAILED,
    STATUS_MISMATCH,
    InstanceRefused,
    ingest_dataset,
)
from radiolens.serve.schemas import UploadItem

__all__ = ["ingest_upload", "sniff_format"]

logger = logging.getLogger(__name__)

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


def sniff_format(data: bytes) -> str:
    """Return ``"dicom"``, ``"dicom-raw"`` (no preamble), ``"png"`` or ``"jpeg"`` from content.

    Raises:
        InstanceRefused: the content is empty or of no supported kind.
    """
    if not data:
        raise InstanceRefused(STATUS_MISMATCH, "the file is empty")
    if data.startswith(_PNG):
        return "png"
    if data.startswith(_JPEG):
        return "jpeg"
    if has_dicom_preamble(data[:132]):
        return "dicom"
    # DICOM without preamble starts with a group 0002 or 0008 tag, little endian
    if data[:2] in (b"\x02\x00", b"\x08\x00"):
        return "dicom-raw"
    raise InstanceRefused(
        STATUS_MISMATCH, "not a DICOM, PNG or JPEG file (unrecognised content)"
    )


def _secondary_capture(data: bytes, fmt: str, patient_id: str, patient_name: str) -> bytes:
    """Encode a PNG/JPEG as a Secondary Capture DICOM file; UIDs derive from the content."""
    digest = hashlib.sha256(data).hexdigest()
    suffix = ".png" if fmt == "png" else ".jpg"
    with tempfile.TemporaryDirectory(prefix="radiolens-upload-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            pixels, _mode = load_grey_array(path)
        except ImageReadError as exc:  # name no temporary path in the answer
            reason = str(exc).replace(f"{path}: ", "")
            raise InstanceRefused(STATUS_DECODE_FAILED, reason) from exc
    pid = patient_id or f"ANON-{digest[:10]}"
    ds = to_secondary_capture(
        pixels,
        patient_id=pid,
        patient_name=patient_name,
        study_instance_uid=generate_uid(entropy_srcs=[digest, pid, "study"]),
        study_description="Uploaded image",
    )
    sop_uid = generate_uid(entropy_srcs=[digest, pid, "sop"])
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[digest, pid, "series"])
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ingest_upload(
    data_dir: Path,
    engine: Engine,
    filename: str,
    data: bytes,
    *,
    patient_id: str = "",
    patient_name: str = "",
) -> UploadItem:
    """Validate, store and record one uploaded file; never raises on bad content.

    Args:
        data_dir: the service's data directory.
        engine: the worklist engine.
        filename: the name the client gave (for the answer and the log only).
        data: the file's bytes.
        patient_id: Patient ID for PNG/JPEG (default ``ANON-<hash of the file>``).
        patient_name: Patient's Name for PNG/JPEG (DICOM form ``Family^Given``).

    Returns:
        ``stored``, ``duplicate`` or ``refused`` (with the reason) for this file.

    Raises:
        WorklistError, OSError: the worklist or the disk cannot be written (not the
            client's fault; the API answers 503).
    """
    try:
        fmt = sniff_format(data)
        if fmt in ("png", "jpeg"):
            data = _secondary_capture(data, fmt, patient_id, patient_name)
            fmt = "dicom"
        try:
            ds = dcmread(BytesIO(data), force=fmt == "dicom-raw")
        except Exception as exc:  # pydicom raises many kinds on garbage
            raise InstanceRefused(STATUS_DECODE_FAILED, f"cannot read DICOM: {exc}") from exc
        study_uid, created = ingest_dataset(
            data_dir, engine, ds, encoded=data if fmt == "dicom" else None
        )
    except InstanceRefused as exc:
        logger.warning("upload %r refused: %s", filename, exc.reason)
        return UploadItem(filename=filename, status="refused", error=exc.reason)
    except InputFormatError as exc:  # a field to_secondary_capture cannot store
        logger.warning("upload %r refused: %s", filename, exc)
        return UploadItem(filename=filename, status="refused", error=str(exc))
    logger.info("upload %r %s in study %s", filename,
                "stored" if created else "was a duplicate", study_uid)
    return UploadItem(
        filename=filename,
        status="stored" if created else "duplicate",
        study_instance_uid=study_uid,
    )
