"""The one "single-frame greyscale radiograph" check, and the pixel cap.

:func:`check_radiograph` looks at a dataset's header (and the length of its pixel data,
never decoding it) and returns a :class:`Refusal` saying why radiolens cannot score the
instance, or ``None``. Each boundary maps the refusal's :attr:`~Refusal.kind` to its own
answer: the DICOM receiver to a C-STORE status, the HTTP upload to a 4xx, the image
reader to :class:`~radiolens.errors.ImageReadError`.

The pixel cap (:data:`DEFAULT_MAX_PIXELS`) is checked from Rows x Columns (or, for PNG
and JPEG, from the size Pillow reads from the file header) **before** anything is
decoded: a 160 KB PNG or a deflated DICOM can declare an image that takes gigabytes once
decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from radiolens.imaging.elements import element_value

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Refusal",
    "check_pixel_count",
    "check_radiograph",
]

#: Largest image accepted, in pixels (Rows x Columns): 36 megapixels (6000 x 6000). The
#: largest chest detectors are about 4300 x 4300 (18.5 MP), so this leaves room for
#: every real chest radiograph while refusing images that would take gigabytes to decode.
DEFAULT_MAX_PIXELS = 6000 * 6000

RefusalKind = Literal["invalid", "unsupported", "too-large"]


@dataclass(frozen=True)
class Refusal:
    """Why an instance cannot be scored.

    Attributes:
        kind: ``"invalid"`` (the dataset lacks what its SOP class requires, or is
            truncated), ``"unsupported"`` (a valid image radiolens cannot score: colour,
            multi-frame, float pixels) or ``"too-large"`` (over the pixel cap).
        reason: a short human reason (at most about 60 characters, so that it fits a
            DICOM ErrorComment).
    """

    kind: RefusalKind
    reason: str

    def __str__(self) -> str:
        return self.reason


def _positive_int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def check_pixel_count(rows: Any, columns: Any,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> Refusal | None:
    """Refuse an image whose Rows x Columns exceeds ``max_pixels`` (or is not positive).

    Example:
        >>> check_pixel_count(12000, 12000).reason
        'image 12000x12000 (144.0 MP) exceeds the 36.0 MP limit'
        >>> check_pixel_count(4300, 4300) is None
        True
    """
    r, c = _positive_int(rows), _positive_int(columns)
    if r is None or c is None:
        return Refusal("invalid", f"invalid image size Rows={rows!r} Columns={columns!r}"[:64])
    if r * c > max_pixels:
        return Refusal("too-large", f"image {c}x{r} ({r * c / 1e6:.1f} MP) exceeds the "
                                    f"{max_pixels / 1e6:.1f} MP limit")
    return None


def _is_compressed(transfer_syntax: str | None) -> bool:
    if not transfer_syntax:
        return False
    from pydicom.uid import UID

    uid = UID(transfer_syntax)
    return bool(uid.is_compressed) if uid.is_transfer_syntax else False


def check_radiograph(
    ds: Any,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    transfer_syntax: str | None = None,
) -> Refusal | None:
    """Return why ``ds`` is not a single-frame greyscale radiograph radiolens can score.

    Checks, in order: pixel data present (integer, not float), one frame, greyscale
    (one sample, MONOCHROME1/2), Rows, Columns and BitsAllocated present, Rows x Columns
    within ``max_pixels``, pixel data not empty and, for uncompressed transfer syntaxes,
    as long as the header says. Nothing is decoded.

    Args:
        ds: a pydicom dataset (its pixel data need not be decoded).
        max_pixels: the pixel cap.
        transfer_syntax: the dataset's transfer syntax; None to take it from
            ``ds.file_meta``.

    Returns:
        ``None`` when the dataset passes, else a :class:`Refusal`.

    Raises:
        DicomElementError: an element it reads cannot be decoded (each boundary maps
            this to its own answer, like a refusal).

    Example:
        >>> check_radiograph(Dataset())  # doctest: +SKIP
        Refusal(kind='invalid', reason='no pixel data')
    """
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            return Refusal("unsupported", "float pixel data is not supported")
        return Refusal("invalid", "no pixel data")
    frames = element_value(ds, "NumberOfFrames", 1)
    n_frames = 1 if frames in (None, "") else _positive_int(frames)
    if n_frames is None:
        return Refusal("invalid", f"invalid NumberOfFrames {str(frames)[:20]!r}")
    if n_frames != 1:
        return Refusal("unsupported", f"multi-frame image ({n_frames} frames)")
    samples = element_value(ds, "SamplesPerPixel", 1)
    photometric = str(element_value(ds, "PhotometricInterpretation", "") or "").strip()
    if samples not in (1, None) or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return Refusal("unsupported", f"not greyscale ({photometric[:16] or 'no photometric'}, "
                                      f"{samples} samples/pixel)")
    rows, columns = element_value(ds, "Rows"), element_value(ds, "Columns")
    bits = _positive_int(element_value(ds, "BitsAllocated"))
    if not rows or not columns or bits is None:
        return Refusal("invalid", "no Rows, Columns or BitsAllocated")
    too_big = check_pixel_count(rows, columns, max_pixels)
    if too_big is not None:
        return too_big
    data = element_value(ds, "PixelData")
    if not data:  # present but empty (a zero-length element reads as None)
        return Refusal("invalid", "pixel data is empty")
    if transfer_syntax is None:
        meta = getattr(ds, "file_meta", None)
        transfer_syntax = (str(element_value(meta, "TransferSyntaxUID", "") or "")
                           if meta is not None else "")
    if not _is_compressed(transfer_syntax):
        expected = (int(rows) * int(columns) * bits + 7) // 8
        if len(data) < expected:
            return Refusal("invalid", f"pixel data truncated ({len(data)} of {expected} bytes)")
    return None
