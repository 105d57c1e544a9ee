"""Read PNG and JPEG radiographs with Pillow.

8-bit images are divided by 255; 16-bit PNGs are min-max scaled to [0, 1] (as the radiolens
development data were made). Colour becomes grey by ITU-R 601 luma and transparency is
composited onto black. Truncated or corrupt files raise
:class:`~radiolens.errors.ImageReadError` naming the file.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from radiolens.errors import ImageReadError, MissingDependencyError
from radiolens.imaging.checks import DEFAULT_MAX_PIXELS, check_pixel_count
from radiolens.imaging.image import XrayImage

try:
    from PIL import Image, ImageOps, UnidentifiedImageError
except ImportError:  # pragma: no cover - depends on the install
    raise MissingDependencyError("pillow", "dicom") from None

__all__ = ["load_grey_array", "read_raster"]

_EXIF_ORIENTATION = 0x0112

# Pillow's own guard against decompression bombs (it warns above MAX_IMAGE_PIXELS and
# refuses above twice that), kept no looser than radiolens's pixel cap. Every read here
# checks the cap itself from the header first; this is the backstop for other callers.
if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > DEFAULT_MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS

logger = logging.getLogger(__name__)

#: ITU-R BT.601 luma weights (R, G, B), as Pillow's own ``convert("L")`` uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def _composite_on_black(rgb: npt.NDArray[np.float64], alpha: npt.NDArray[np.float64]
                        ) -> npt.NDArray[np.float64]:
    return rgb * (alpha / 255.0)[..., None] if rgb.ndim == 3 else rgb * (alpha / 255.0)


def _grey_from_8bit(img: Image.Image) -> npt.NDArray[np.float64]:
    """Grey values in [0, 255] (float) for any 8-bit-per-channel Pillow image."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("L" if mode == "1" else "RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA", "RGBa", "La", "RGBX"):
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.float64)
    mode = img.mode
    if mode == "L":
        return arr
    if mode in ("LA", "La"):
        grey, alpha = arr[..., 0], arr[..., 1]
        return grey if mode == "La" else _composite_on_black(grey, alpha)
    rgb = arr[..., :3]
    if mode == "RGBA":
        rgb = _composite_on_black(rgb, arr[..., 3])
    return np.asarray(rgb @ _LUMA, dtype=np.float64)


def load_grey_array(
    path: str | Path | IO[bytes],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> tuple[npt.NDArray[np.uint8] | npt.NDArray[np.uint16], str]:
    """Decode a PNG or JPEG to an integer greyscale array, keeping its bit depth.

    Colour is converted to grey (ITU-R 601 luma, rounded) with transparency composited onto
    black; 16-bit greyscale PNG keeps its stored values. An EXIF orientation tag (photos of
    films taken with a phone) is applied, so the array is upright as viewers show it.

    The image size is read from the file header first: an image of more than
    ``max_pixels`` pixels is refused before anything is decoded.

    Args:
        path: the PNG or JPEG file, or a binary file object holding one.
        max_pixels: the pixel cap (width x height).
        name: how messages name the image (default: the path; ``"image"`` for a file
            object).

    Returns:
        ``(array, mode)``: a ``uint8`` (8-bit sources) or ``uint16`` (16-bit PNG) array of
        shape ``(H, W)`` and Pillow's mode of the file.

    Raises:
        ImageReadError: the file is unreadable, truncated, corrupt or over the pixel cap.
    """
    p = name or (str(path) if isinstance(path, (str, Path)) else "image")
    try:
        with warnings.catch_warnings():  # the size is checked just below, against our cap
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened:
            width, height = opened.size  # from the header: nothing decoded yet
            too_big = check_pixel_count(height, width, max_pixels)
            if too_big is not None:
                raise ImageReadError(f"{p}: {too_big.reason}; a chest radiograph is at most "
                                     "about 4300x4300: is this the right file?")
            opened.load()
            img: Image.Image = opened
            if opened.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                # a camera or phone JPEG stored sideways: turn it the way it is displayed
                img = ImageOps.exif_transpose(opened)
            mode = img.mode
            if mode in _SIXTEEN_BIT_MODES:
                raw = np.asarray(img)
                if raw.ndim != 2:
                    raise ImageReadError(f"{p}: unexpected {mode} image of shape {raw.shape}")
                if mode == "F" or raw.min() < 0 or raw.max() > 65535:
                    # 32-bit integer or float images: scale into uint16 without losing order.
                    raw = _minmax(raw.astype(np.float64)) * 65535.0
                    return np.rint(raw).astype(np.uint16), mode
                return raw.astype(np.uint16), mode
            grey = _grey_from_8bit(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{p}: Pillow cannot identify this image; the file is corrupt or not a PNG/JPEG: "
            "re-export it") from None
    except Image.DecompressionBombError:  # Pillow's backstop, at twice its MAX_IMAGE_PIXELS
        raise ImageReadError(
            f"{p}: image exceeds the {max_pixels / 1e6:.1f} MP limit by far (refused from "
            "its header as a possible decompression bomb); a chest radiograph is at most "
            "about 4300x4300: is this the right file?") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(
            f"{p}: cannot decode the image ({exc}); the file is truncated or corrupt: "
            "re-copy or re-export it") from None
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8), mode


def _minmax(arr: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr)
    return (arr - lo) / (hi - lo)


def read_raster(path: str | Path, fmt: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> XrayImage:
    """Read a PNG or JPEG radiograph into an :class:`~radiolens.imaging.XrayImage`.

    Args:
        path: the image file.
        fmt: ``"png"`` or ``"jpeg"`` (from :func:`~radiolens.imaging.detect_format`).
        max_pixels: the pixel cap, checked before decoding.

    Returns:
        The image with ``float32`` pixels in [0, 1]; ``meta`` holds Pillow's ``mode``.

    Raises:
        ImageReadError: the file is unreadable, truncated or corrupt.
    """
    p = Path(path)
    arr, mode = load_grey_array(p, max_pixels=max_pixels)
    if arr.dtype == np.uint16:
        pixels = _minmax(arr.astype(np.float64))
        bits = 16
    else:
        pixels = arr.astype(np.float64) / 255.0
        bits = 8
    logger.debug("%s: read %s %s image %dx%d", p, fmt, mode, arr.shape[1], arr.shape[0])
    return XrayImage(pixels=pixels.astype(np.float32), source_format=fmt, bits=bits,
                     meta={"mode": mode, "stored_range": (int(arr.min()), int(arr.max()))})
