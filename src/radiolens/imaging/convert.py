"""Wrap greyscale pixels in a DICOM Secondary Capture, and write DICOM files atomically.

Used for PNG uploads to the triage service and for the demo studies: the result is a
valid Secondary Capture Image Storage instance (MONOCHROME2, explicit VR little endian)
with file meta information and fresh UIDs.

Example:
    >>> ds = to_secondary_capture(pixels, patient_id="DEMO-001")   # doctest: +SKIP
    >>> write_dicom_atomic(ds, "out/DEMO-001.dcm")                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens import __version__
from radiolens._fs import write_atomic
from radiolens.errors import ImageReadError, InputFormatError, MissingDependencyError
from radiolens.imaging.image import detect_format

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        ExplicitVRLittleEndian,
        SecondaryCaptureImageStorage,
        generate_uid,
    )
except ImportError:  # pragma: no cover - depends on the install
    raise MissingDependencyError("pydicom", "dicom") from None

__all__ = ["png_to_dicom", "to_secondary_capture", "write_dicom_atomic"]

logger = logging.getLogger(__name__)

_AGE_RE = re.compile(r"^\d{3}[DWMY]$")
_SEXES = ("M", "F", "O", "")


def _pixels_for_dicom(pixels: npt.NDArray[Any]) -> npt.NDArray[np.uint8] | npt.NDArray[np.uint16]:
    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise InputFormatError(
            f"pixels must be a 2-D greyscale array (H, W), got shape {arr.shape}; convert "
            "colour to grey and pass one frame")
    if arr.size == 0:
        raise InputFormatError("pixels is empty")
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        return arr
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise InputFormatError("pixels contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InputFormatError(
                f"float pixels must lie in [0, 1], got [{lo:g}, {hi:g}]; scale them first "
                "or pass uint8/uint16")
        return np.rint(arr * 255.0).astype(np.uint8)
    raise InputFormatError(
        f"pixels of dtype {arr.dtype} are not supported; pass uint8, uint16, or float in [0, 1]")


def _check_text(name: str, value: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise InputFormatError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > max_len or "\\" in value:
        # the value itself is not repeated: it may be a patient's name, and errors are logged
        raise InputFormatError(
            f"{name} is not a valid DICOM value (at most {max_len} characters, no "
            "backslash)")
    return value


def _normalise_age(age: str) -> str:
    text = str(age).strip().upper()
    if text.isdigit():
        text = f"{int(text):03d}Y"
    if text and not _AGE_RE.match(text):
        raise InputFormatError(
            f"patient_age {age!r} is not a DICOM age; use years like '045Y' (or '45'), or "
            "'006M', '003W', '010D'")
    return text


def to_secondary_capture(
    pixels: npt.NDArray[Any],
    *,
    patient_id: str,
    patient_name: str = "",
    patient_sex: str = "",
    patient_age: str = "",
    study_instance_uid: str | None = None,
    accession_number: str = "",
    study_description: str = "",
    modality: str = "DX",
    series_description: str = "",
    view_position: str = "",
) -> Dataset:
    """Build a Secondary Capture Image Storage dataset from a greyscale image.

    Args:
        pixels: ``uint8`` or ``uint16`` array of shape ``(H, W)``, or a float array in
            [0, 1] (stored as ``uint8``). Brighter values are displayed brighter.
        patient_id: Patient ID (at most 64 characters).
        patient_name: Patient's Name, DICOM form ``"Family^Given"``.
        patient_sex: ``"M"``, ``"F"``, ``"O"`` or ``""``.
        patient_age: DICOM age such as ``"045Y"`` (plain years like ``"45"`` accepted).
        study_instance_uid: put the image in this study; a fresh UID when ``None``.
        accession_number: Accession Number (at most 16 characters).
        study_description: Study Description.
        modality: Modality (``"DX"`` by default; ``"CR"`` or ``"OT"`` also common).
        series_description: Series Description.
        view_position: View Position such as ``"PA"`` or ``"AP"``.

    Returns:
        A dataset with file meta (explicit VR little endian), fresh series and instance
        UIDs, and study/series/content dates and times set to now.

    Raises:
        InputFormatError: the pixels or a field value cannot be stored.

    Example:
        >>> ds = to_secondary_capture(np.zeros((64, 64), np.uint8), patient_id="P1")
        >>> ds.PhotometricInterpretation
        'MONOCHROME2'
    """
    arr = _pixels_for_dicom(pixels)
    sex = patient_sex.strip().upper()
    if sex not in _SEXES:
        raise InputFormatError(f"patient_sex {patient_sex!r} must be 'M', 'F', 'O' or ''")
    age = _normalise_age(patient_age)
    if not patient_id:
        logger.warning("creating a Secondary Capture without a Patient ID")
    modality = modality.strip().upper() or "OT"

    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    sop_uid = generate_uid()

    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    file_meta.MediaStorageSOPInstanceUID = sop_uid
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    file_meta.ImplementationVersionName = f"RADIOLENS_{__version__}"[:16]

    ds = Dataset()
    ds.file_meta = file_meta
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, so any patient name can be stored
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = time
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    # Patient
    ds.PatientName = _check_text("patient_name", patient_name, 64 * 5)
    ds.PatientID = _check_text("patient_id", patient_id, 64)
    ds.PatientBirthDate = ""
    ds.PatientSex = sex
    if age:
        ds.PatientAge = age
    # General study
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.StudyDate = date
    ds.StudyTime = time
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = _check_text("accession_number", accession_number, 16)
    if study_description:
        ds.StudyDescription = _check_text("study_description", study_description, 64)
    # General series
    ds.Modality = _check_text("modality", modality, 16)
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDate = date
    ds.SeriesTime = time
    if series_description:
        ds.SeriesDescription = _check_text("series_description", series_description, 64)
    if view_position:
        ds.ViewPosition = _check_text("view_position", view_position.strip().upper(), 16)
    # SC equipment and general image
    ds.ConversionType = "WSD"
    ds.Manufacturer = "radiolens"
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.ContentDate = date
    ds.ContentTime = time
    ds.BurnedInAnnotation = "NO"
    # Image pixel
    bits = 8 if arr.dtype == np.uint8 else 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(arr, dtype=f"<u{bits // 8}").tobytes()
    return ds


def write_dicom_atomic(ds: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to ``path`` so that readers never see a half-written file.

    The dataset is encoded in memory, then written with :func:`radiolens._fs.write_atomic`
    (a unique temporary file in the same folder, fsync, rename, fsync of the folder).
    Missing parent folders are created.

    Args:
        ds: a dataset with file meta information.
        path: the destination file.

    Returns:
        The destination path.
    """
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return write_atomic(path, buffer.getvalue())


def png_to_dicom(src_png: str | os.PathLike[str], dst_dcm: str | os.PathLike[str],
                 **kwargs: Any) -> Path:
    """Convert a PNG (or JPEG) radiograph to a Secondary Capture DICOM file.

    8-bit images are stored as 8-bit, 16-bit PNGs as 16-bit (their stored values kept);
    colour is converted to grey with transparency composited onto black.

    Args:
        src_png: the PNG or JPEG file.
        dst_dcm: the DICOM file to write (atomically).
        **kwargs: the keyword arguments of :func:`to_secondary_capture`
            (``patient_id`` is required).

    Returns:
        The written DICOM path.

    Raises:
        ImageReadError: the source is not a readable PNG/JPEG.
        InputFormatError: a field value cannot be stored.
    """
    from radiolens.imaging.raster import load_grey_array

    src = Path(src_png)
    fmt, _ = detect_format(src)
    if fmt not in ("png", "jpeg"):
        raise ImageReadError(f"{src}: is {fmt.upper()}, not PNG or JPEG; it needs no conversion")
    arr, mode = load_grey_array(src)
    ds = to_secondary_capture(arr, **kwargs)
    out = write_dicom_atomic(ds, dst_dcm)
    logger.debug("%s (%s %s) -> %s", src, fmt, mode, out)
    return out
