"""Read one radiograph (DICOM, PNG or JPEG) into a [0, 1] greyscale array.

The format is taken from the file's content (the PNG and JPEG signatures, the DICOM
``DICM`` marker at byte 128), not from its name; a file named ``.dcm`` (or with no
suffix) that lacks the marker is read as DICOM without a preamble. Everything that
cannot be read raises :class:`~radiolens.errors.ImageReadError` naming the file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens.errors import ImageReadError

__all__ = ["DICOM_SUFFIXES", "IMAGE_SUFFIXES", "XrayImage", "detect_format", "read_image"]

logger = logging.getLogger(__name__)

#: File name suffixes read as DICOM even when the file has no ``DICM`` preamble.
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")
#: File name suffixes :func:`~radiolens.imaging.iter_image_files` picks up.
IMAGE_SUFFIXES: tuple[str, ...] = (*DICOM_SUFFIXES, ".png", ".jpg", ".jpeg")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_RASTER_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


@dataclass(frozen=True, eq=False)
class XrayImage:
    """A greyscale radiograph as displayed, scaled to [0, 1].

    Attributes:
        pixels: ``float32`` array of shape ``(H, W)`` with values in [0, 1]; higher is
            brighter as displayed (the MONOCHROME2 convention: bone is bright).
        source_format: ``"dicom"``, ``"png"`` or ``"jpeg"``.
        bits: bits per stored sample (DICOM *Bits Stored*; 8 or 16 for PNG; 8 for JPEG).
        meta: what the file says about the image. DICOM: ``PatientID``,
            ``StudyInstanceUID``, ``SeriesInstanceUID``, ``SOPInstanceUID``,
            ``SOPClassUID``, ``Modality``, ``ViewPosition``, ``PatientSex``,
            ``PatientAge``, ``PhotometricInterpretation``, ``TransferSyntaxUID`` (each a
            ``str`` or ``None`` when absent), ``PixelSpacing`` / ``ImagerPixelSpacing``
            (``(row, column)`` in mm, only when present) and ``VOI`` (``"lut"``,
            ``"window"`` or ``None``: what was applied). PNG/JPEG: ``mode`` (Pillow's).
            Both: ``stored_range``, the smallest and largest stored value (what the
            input gate, :func:`~radiolens.imaging.gate.assess_image`, checks).

    Example:
        >>> img = read_image("chest.dcm")                      # doctest: +SKIP
        >>> img.pixels.shape, img.pixels.dtype, img.source_format  # doctest: +SKIP
        ((2048, 2048), dtype('float32'), 'dicom')
    """

    pixels: npt.NDArray[np.float32]
    source_format: str
    bits: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        """Rows in :attr:`pixels`."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Columns in :attr:`pixels`."""
        return int(self.pixels.shape[1])


def _read_head(path: Path, n: int = 132) -> bytes:
    if not path.exists():
        raise ImageReadError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file; "
                             "use scan_images() or iter_image_files() for folders")
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot open: {exc.strerror or exc}") from None


def has_dicom_preamble(head: bytes) -> bool:
    """Whether ``head`` (the first 132 bytes of a file) carries the DICOM ``DICM`` marker."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def _dicom_by_name(path: Path) -> bool:
    suffix = path.suffix.lower()
    # No suffix, or a numeric one as in files named by their UID (1.2.840....).
    return suffix in DICOM_SUFFIXES or suffix == "" or suffix[1:].isdigit()


def detect_format(path: str | Path) -> tuple[str, bool]:
    """Return ``(format, has_preamble)`` for an image file, from its content first.

    ``format`` is ``"dicom"``, ``"png"`` or ``"jpeg"``; ``has_preamble`` is ``True`` when
    a DICOM file carries the ``DICM`` marker (otherwise it is read with pydicom's
    ``force=True``).

    Raises:
        ImageReadError: the file is missing, empty, or of no supported format.
    """
    p = Path(path)
    head = _read_head(p)
    if not head:
        raise ImageReadError(f"{p}: file is empty (0 bytes); re-export or re-copy it")
    if head.startswith(_PNG_SIGNATURE):
        fmt = "png"
    elif head.startswith(_JPEG_SIGNATURE):
        fmt = "jpeg"
    elif has_dicom_preamble(head):
        return "dicom", True
    elif _dicom_by_name(p):
        return "dicom", False
    else:
        suffix = p.suffix.lower()
        if suffix in _RASTER_SUFFIXES:
            raise ImageReadError(
                f"{p}: is not a {_RASTER_SUFFIXES[suffix].upper()} file (its content does not "
                "start with the format's signature); the file is corrupt or mislabelled: "
                "re-export it")
        raise ImageReadError(
            f"{p}: unsupported file type {suffix or '(no suffix)'!r}; radiolens reads DICOM, "
            "PNG and JPEG radiographs")
    expected = _RASTER_SUFFIXES.get(p.suffix.lower())
    if (expected is not None and expected != fmt) or p.suffix.lower() in DICOM_SUFFIXES:
        logger.debug("%s: content is %s, not what the file name says", p, fmt)
    return fmt, False


def read_image(path: str | Path, *, max_pixels: int | None = None) -> XrayImage:
    """Read a DICOM, PNG or JPEG radiograph.

    DICOM goes through the DICOM grey-scale pipeline (modality LUT or rescale, then the
    VOI LUT or the first window, MONOCHROME1 inverted) and is then min-max scaled to
    [0, 1]. 8-bit PNG/JPEG is divided by 255; 16-bit PNG is min-max scaled (as the
    radiolens development data were made); colour is converted to grey (ITU-R 601
    luma) with transparency composited onto black. See :class:`XrayImage`.

    Images larger than ``max_pixels`` (Rows x Columns, or width x height) are refused
    from the file header, before anything is decoded, so a small file declaring a huge
    image cannot exhaust memory.

    Args:
        path: the image file.
        max_pixels: the pixel cap; None for
            :data:`~radiolens.imaging.checks.DEFAULT_MAX_PIXELS` (36 megapixels).

    Returns:
        The image, with pixels in [0, 1] (a constant image reads as all zeros).

    Raises:
        ImageReadError: the file is missing, empty, truncated, corrupt, or of a kind
            radiolens does not support (multi-frame or colour DICOM, a compressed
            transfer syntax without a decoder, no pixel data, over the pixel cap); the
            message names the file.
    """
    from radiolens.imaging.checks import DEFAULT_MAX_PIXELS

    cap = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    p = Path(os.fspath(path))
    fmt, has_preamble = detect_format(p)
    if fmt == "dicom":
        from radiolens.imaging.dicom import read_dicom

        return read_dicom(p, force=not has_preamble, max_pixels=cap)
    from radiolens.imaging.raster import read_raster

    return read_raster(p, fmt, max_pixels=cap)
