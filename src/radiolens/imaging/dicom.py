"""Read single-frame greyscale DICOM radiographs with pydicom.

The DICOM grey-scale pipeline is applied in order: *Bits Stored* honoured, modality LUT
or rescale slope/intercept, then the VOI LUT or the first window, then MONOCHROME1
inversion; the result is min-max scaled to [0, 1]. What radiolens cannot read (no pixel
data, multi-frame, colour, a compressed transfer syntax without a decoder, a truncated
file) raises :class:`~radiolens.errors.ImageReadError` naming the file and saying what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens.errors import DicomElementError, ImageReadError, MissingDependencyError
from radiolens.imaging.checks import DEFAULT_MAX_PIXELS, check_pixel_count, check_radiograph
from radiolens.imaging.elements import element_value, transfer_syntax_uid
from radiolens.imaging.image import XrayImage

try:
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
except ImportError:  # pragma: no cover - depends on the install
    raise MissingDependencyError("pydicom", "dicom") from None

__all__ = ["dicom_meta", "read_dicom"]

logger = logging.getLogger(__name__)

_META_KEYWORDS = (
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "Modality",
    "ViewPosition",
    "PatientSex",
    "PatientAge",
    "PhotometricInterpretation",
)
_DECODER_HINT = (
    "install a decoder with: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
    "pylibjpeg-rle (or: pip install python-gdcm), or decompress the file first "
    "(e.g. dcmdjpeg / gdcmconv --raw)"
)


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def dicom_meta(ds: Dataset) -> dict[str, Any]:
    """The metadata :class:`~radiolens.imaging.XrayImage` documents, taken from a dataset.

    Args:
        ds: a pydicom dataset (pixel data need not be loaded).

    Returns:
        A dict with the keys listed in :class:`~radiolens.imaging.XrayImage` (``VOI`` is
        ``None`` here; :func:`read_dicom` sets it).

    Raises:
        DicomElementError: one of those elements cannot be decoded, or the transfer
            syntax is not one (the pixel spacings, which are optional, are ignored with
            a warning instead).
    """
    meta: dict[str, Any] = {kw: _str_or_none(element_value(ds, kw)) for kw in _META_KEYWORDS}
    meta["TransferSyntaxUID"] = _str_or_none(transfer_syntax_uid(ds))
    for kw in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            value = element_value(ds, kw)
        except DicomElementError as exc:
            logger.warning("ignoring %s: %s", kw, exc.detail)
            continue
        if value is not None:
            try:
                meta[kw] = (float(value[0]), float(value[1]))
            except (TypeError, ValueError, IndexError):
                logger.debug("ignoring malformed %s %r", kw, value)
    meta["VOI"] = None
    return meta


_HINTS = {
    "no pixel data": "it is probably a structured report, presentation state or other "
                     "non-image object (or not DICOM at all); pass the image file of the "
                     "study instead",
    "float pixel data is not supported": "send an integer-valued radiograph",
    "multi-frame": "radiolens reads single-frame radiographs: split the frames into separate "
                   "files first",
    "not greyscale": "radiolens reads greyscale (MONOCHROME1/MONOCHROME2) radiographs: send "
                     "the original greyscale image",
    "exceeds": "a chest radiograph is at most about 4300x4300: is this the right file?",
}


def _check_supported(ds: Dataset, p: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    refusal = check_radiograph(ds, max_pixels=max_pixels)
    if refusal is not None:
        reason = f"DICOM {refusal.reason}"
        if refusal.reason.startswith("not greyscale"):  # say which attributes, as before
            samples = element_value(ds, "SamplesPerPixel", 1)
            photometric = str(element_value(ds, "PhotometricInterpretation", "") or "").strip()
            reason = (f"colour DICOM (SamplesPerPixel={samples}, PhotometricInterpretation="
                      f"{photometric or 'missing'}) is not supported")
        hint = next((h for key, h in _HINTS.items() if key in refusal.reason),
                    "the file is truncated or corrupt, or its image attributes are "
                    "inconsistent: re-copy or re-send it")
        raise ImageReadError(f"{p}: {reason}; {hint}")
    tsyntax = transfer_syntax_uid(ds)
    if tsyntax is not None and tsyntax.is_compressed:
        try:
            decoder = get_decoder(tsyntax)
        except NotImplementedError:
            raise ImageReadError(
                f"{p}: pixel data compressed as {tsyntax.name} ({tsyntax}), which pydicom "
                f"cannot decode; decompress the file first (e.g. dcmdjpeg / gdcmconv --raw)"
            ) from None
        if not decoder.is_available:
            raise ImageReadError(
                f"{p}: pixel data compressed as {tsyntax.name} ({tsyntax}) and no decoder "
                f"is installed; {_DECODER_HINT}")


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Record the encoding pydicom detected when a file (read with force) has no file meta."""
    if "TransferSyntaxUID" in ds.file_meta:
        return
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit is None:
        implicit, little = True, True
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        ds.file_meta.TransferSyntaxUID = (ExplicitVRLittleEndian if little
                                          else ExplicitVRBigEndian)


def _honour_bits_stored(arr: npt.NDArray[Any], ds: Dataset) -> npt.NDArray[Any]:
    """Mask (unsigned) or sign-extend (signed) the high bits above *Bits Stored*."""
    allocated = int(element_value(ds, "BitsAllocated", arr.dtype.itemsize * 8) or 0)
    stored = int(element_value(ds, "BitsStored", allocated) or allocated)
    if not 0 < stored < allocated or arr.dtype.kind not in "iu":
        return arr
    mask = (1 << stored) - 1
    values = arr.astype(np.int64) & mask
    if int(element_value(ds, "PixelRepresentation", 0) or 0) == 1:
        sign = 1 << (stored - 1)
        values = (values ^ sign) - sign
    return values


def _minmax(arr: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    lo, hi = float(arr.min()), float(arr.max())
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError("pixel values are not finite")
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def _check_size_first(p: Path, force: bool, max_pixels: int) -> None:
    """Refuse an image over the pixel cap from its header, before its pixels are read.

    A header that cannot be read is left to the full read, which reports what is wrong.
    """
    try:
        head = pydicom.dcmread(p, force=force, stop_before_pixels=True)
    except Exception:  # the full read below reports what is wrong
        return
    if "Rows" in head and "Columns" in head:
        try:
            rows, columns = element_value(head, "Rows"), element_value(head, "Columns")
        except DicomElementError:  # check_radiograph, after the full read, reports it
            return
        too_big = check_pixel_count(rows, columns, max_pixels)
        if too_big is not None and too_big.kind == "too-large":
            raise ImageReadError(f"{p}: DICOM {too_big.reason}; {_HINTS['exceeds']}")


def read_dicom(path: str | Path, force: bool = False, *,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> XrayImage:
    """Read a single-frame greyscale DICOM radiograph.

    Args:
        path: the DICOM file.
        force: read a file without the ``DICM`` preamble (pydicom's ``force=True``).
        max_pixels: refuse images whose Rows x Columns exceed this, from the header,
            before the pixel data is read or decoded.

    Returns:
        The image, ``float32`` pixels in [0, 1], bright bone (MONOCHROME2 convention);
        ``bits`` is *Bits Stored*; ``meta`` as documented on
        :class:`~radiolens.imaging.XrayImage`.

    Raises:
        ImageReadError: no pixel data, multi-frame, colour, over the pixel cap,
            compressed without a decoder, truncated or otherwise corrupt; the message
            names the file.
    """
    p = Path(path)
    _check_size_first(p, force, max_pixels)
    try:
        ds = pydicom.dcmread(p, force=force)
    except InvalidDicomError as exc:
        raise ImageReadError(f"{p}: not a DICOM file ({exc})") from None
    except Exception as exc:  # pydicom raises many kinds on truncated/corrupt input
        raise ImageReadError(
            f"{p}: cannot parse the DICOM file ({type(exc).__name__}: {exc}); it is "
            "truncated or corrupt: re-copy or re-send it") from None
    if force and "PixelData" not in ds and "SOPClassUID" not in ds:
        raise ImageReadError(f"{p}: not a DICOM file (no DICM marker and no DICOM elements "
                             "recognised); check the file")
    _ensure_transfer_syntax(ds)
    try:
        return _to_image(ds, p, max_pixels)
    except DicomElementError as exc:  # the one place an undecodable element is translated
        raise ImageReadError(f"{p}: {exc}") from None


def _to_image(ds: Dataset, p: Path, max_pixels: int) -> XrayImage:
    """Check, decode and transform a read dataset (see :func:`read_dicom`).

    Raises:
        ImageReadError: as :func:`read_dicom`.
        DicomElementError: an element it reads cannot be decoded.
    """
    _check_supported(ds, p, max_pixels)
    meta = dicom_meta(ds)
    try:
        raw = ds.pixel_array
    except Exception as exc:  # truncated pixel data, decoder failures, bad attributes
        raise ImageReadError(
            f"{p}: cannot decode the pixel data ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt, or its image attributes are inconsistent: re-copy or "
            "re-send it") from None
    if raw.ndim != 2:
        raise ImageReadError(f"{p}: expected a 2-D greyscale image, got pixel array of shape "
                             f"{raw.shape}; radiolens reads single-frame greyscale radiographs")
    try:
        arr = _honour_bits_stored(raw, ds)
        if arr.size and np.asarray(arr).dtype.kind in "iu":
            meta["stored_range"] = (int(arr.min()), int(arr.max()))
        arr = apply_modality_lut(arr, ds)
        if "VOILUTSequence" in ds and len(element_value(ds, "VOILUTSequence") or ()) > 0:
            meta["VOI"] = "lut"
        elif (element_value(ds, "WindowCenter") is not None
              and element_value(ds, "WindowWidth") is not None):
            meta["VOI"] = "window"
        if meta["VOI"] is not None:
            arr = apply_voi_lut(arr, ds, index=0, prefer_lut=True)
        values = np.asarray(arr, dtype=np.float64)
        if element_value(ds, "PhotometricInterpretation") == "MONOCHROME1":
            values = -values
        pixels = _minmax(values)
    except (ImageReadError, DicomElementError):
        raise
    except Exception as exc:
        raise ImageReadError(
            f"{p}: cannot apply the DICOM grey-scale transforms ({type(exc).__name__}: "
            f"{exc}); the rescale, LUT or window attributes are malformed") from None
    bits = int(element_value(ds, "BitsStored", element_value(ds, "BitsAllocated", 16)) or 16)
    logger.debug("%s: read DICOM %dx%d, %d bits, VOI=%s", p, pixels.shape[1], pixels.shape[0],
                 bits, meta["VOI"])
    return XrayImage(pixels=pixels, source_format="dicom", bits=bits, meta=meta)
