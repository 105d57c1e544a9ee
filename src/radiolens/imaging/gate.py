"""The input gate: is this image plausible as a chest radiograph at all?

:func:`assess_image` runs after an image is read and before it is scored. It catches
what the format checks cannot: a 1 x 50176 strip, a blank (near-constant) frame, 8-bit
data relabelled as 16-bit. It returns a human reason, or ``None`` when the image looks
like something a chest X-ray model can score; the worker then marks the study
``needs-check`` instead of scoring it. The limits are a small dataclass,
:class:`GateLimits`, with defaults chosen for chest radiographs.

Example:
    >>> img = read_image("chest.dcm")          # doctest: +SKIP
    >>> assess_xray(img) is None               # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from radiolens.imaging.image import XrayImage

__all__ = ["GateLimits", "assess_image", "assess_xray"]


@dataclass(frozen=True)
class GateLimits:
    """What the input gate accepts.

    Attributes:
        min_side: the shorter side must have at least this many pixels (a chest
            radiograph, even downsampled for PNG export, has hundreds).
        max_aspect: the longer side may be at most this many times the shorter (chest
            films and detectors are between 3:4 and 4:3; 2.5 leaves room for crops).
        min_spread: the 1st to 99th percentile spread of the [0, 1] pixels must be at
            least this; below it the image is blank (near-constant) as far as a model
            can tell.
        eight_bit_max: with more than 8 bits stored, a largest stored value at most
            this means 8-bit data labelled as deeper (BitsStored 16, values <= 255).
    """

    min_side: int = 64
    max_aspect: float = 2.5
    min_spread: float = 0.02
    eight_bit_max: int = 255


def _stored_max(pixels: npt.NDArray[Any], meta: Mapping[str, Any]) -> float | None:
    """The largest stored value: from integer pixels, else ``meta["stored_range"]``."""
    if pixels.dtype.kind in "iu" and pixels.size:
        return float(pixels.max())
    found = meta.get("stored_range")
    if found is not None:
        try:
            return float(found[1])
        except (TypeError, ValueError, IndexError):
            return None
    return None


def assess_image(pixels: npt.NDArray[Any], meta: Mapping[str, Any],
                 limits: GateLimits = GateLimits()) -> str | None:
    """Return why ``pixels`` is implausible as a chest radiograph, or None when it is not.

    Args:
        pixels: the image, ``(H, W)``: the [0, 1] floats of
            :class:`~radiolens.imaging.XrayImage`, or the stored integer values.
        meta: what the file says: ``BitsStored`` (or ``bits``) and, for float pixels,
            ``stored_range`` (the smallest and largest stored value, as
            :func:`~radiolens.imaging.read_image` records it). Missing keys skip the
            bit-depth check.
        limits: the limits (see :class:`GateLimits`).

    Returns:
        A short reason for a person (``"image is 50176 x 1 pixels ..."``), or None.

    Example:
        >>> assess_image(np.zeros((512, 512), np.float32), {})
        'image is blank (near-constant pixel values); check the exposure and the export'
    """
    arr = np.asarray(pixels)
    if arr.ndim != 2:
        return f"expected one greyscale frame, got an array of shape {arr.shape}"
    height, width = (int(n) for n in arr.shape)
    short, long = min(height, width), max(height, width)
    if short < limits.min_side:
        return (f"image is {width} x {height} pixels (width x height); a chest radiograph "
                f"has at least {limits.min_side} on each side")
    if long / short > limits.max_aspect:
        return (f"image is {width} x {height} pixels, an aspect ratio of {long / short:.1f}:1; "
                f"a chest radiograph is at most {limits.max_aspect:g}:1")
    values = arr.astype(np.float64, copy=False)
    if arr.dtype.kind in "iu" and arr.size:
        # stored values: judge the spread on the scale the data use (the next power of
        # two above the largest value, at least 8 bits), not on the dtype's
        top = max(255, (1 << int(max(int(arr.max()), 1)).bit_length()) - 1)
        values = (values - min(0.0, float(arr.min()))) / top
    # a strided sample is enough for percentiles and spares a copy of a large image
    step = max(1, int(np.sqrt(arr.size / 250_000)))
    sample = values[::step, ::step]
    if not np.all(np.isfinite(sample)):
        return "image has non-finite pixel values"
    lo, hi = np.percentile(sample, [1.0, 99.0])
    if hi - lo < limits.min_spread:
        return "image is blank (near-constant pixel values); check the exposure and the export"
    bits = meta.get("BitsStored", meta.get("bits"))
    try:
        bits_stored = int(bits) if bits is not None else None
    except (TypeError, ValueError):
        bits_stored = None
    if bits_stored is not None and bits_stored > 8:
        stored_max = _stored_max(arr, meta)
        if stored_max is not None and stored_max <= limits.eight_bit_max:
            return (f"{bits_stored}-bit image whose largest value is {stored_max:g}: 8-bit data "
                    "labelled as deeper (a bad conversion?); re-export the original")
    return None


def assess_xray(image: XrayImage, limits: GateLimits = GateLimits()) -> str | None:
    """:func:`assess_image` for an :class:`~radiolens.imaging.XrayImage` (what the worker has).

    Example:
        >>> reason = assess_xray(read_image("chest.dcm"))  # doctest: +SKIP
    """
    return assess_image(image.pixels, {**image.meta, "bits": image.bits}, limits)
