"""The one preprocessing step shared by training, evaluation, prediction and the service.

A radiograph in [0, 1] (from :func:`radiolens.imaging.read_image`) is resized to a square
(``"squash"``: the aspect ratio is not kept, as in CheXNet and the Kermany paper), then
normalised with the model's mean and standard deviation. Numpy and Pillow only, so the
ONNX Runtime path needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["lung_view", "normalize", "preprocess", "resize_square"]

if TYPE_CHECKING:
    from radiolens.segment.crop import LungBox

FloatArray = npt.NDArray[np.float32]


def lung_view(pixels: npt.ArrayLike, mask: npt.ArrayLike, *, crop: bool, dim: float | None,
              margin: float = 0.05) -> tuple[FloatArray, FloatArray, LungBox]:
    """The lung field of a radiograph, as the classifiers with ``crop: lungs`` or
    ``outside_lungs: dim`` see it.

    Args:
        pixels: the 2-D image in [0, 1].
        mask: its lung mask (same shape).
        crop: keep only the box around the lungs (grown by ``margin``).
        dim: multiply pixels outside the mask by this (``None``: leave them).

    Returns:
        ``(pixels, mask, box)``: the view, its mask as float, and the box in the image
        (the whole image when not cropping or when the mask is empty).
    """
    from radiolens.segment.crop import LungBox, crop_box
    from radiolens.segment.crop import lung_box as find_box

    arr = np.asarray(pixels, dtype=np.float32)
    m = np.asarray(mask).astype(bool)
    if m.shape != arr.shape:
        raise ValueError(f"lung mask {m.shape} and image {arr.shape} differ in shape")
    box = find_box(m, margin) if crop else LungBox(0, arr.shape[0], 0, arr.shape[1])
    view = crop_box(arr, box).copy()
    vmask = crop_box(m.astype(np.float32), box)
    if dim is not None and m.any():
        view = np.where(vmask > 0, view, view * np.float32(dim)).astype(np.float32)
    return view, vmask, box


def resize_square(pixels: npt.ArrayLike, image_size: int) -> FloatArray:
    """Resize a 2-D image in [0, 1] to ``image_size x image_size`` (antialiased bilinear).

    Raises:
        ValueError: the array is not 2-D or the size is not positive.
    """
    arr = np.asarray(pixels, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {arr.shape}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if arr.shape == (image_size, image_size):
        return arr.copy()
    img = Image.fromarray(arr, mode="F")
    out = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def normalize(square: npt.ArrayLike, mean: float | Sequence[float], std: float | Sequence[float],
              channels: int = 1) -> FloatArray:
    """Turn an ``(S, S)`` image in [0, 1] into a ``(channels, S, S)`` model input."""
    arr = np.asarray(square, dtype=np.float32)
    means = [float(mean)] * channels if isinstance(mean, (int, float)) else list(mean)
    stds = [float(std)] * channels if isinstance(std, (int, float)) else list(std)
    if len(means) != channels or len(stds) != channels:
        raise ValueError(f"mean/std need {channels} values, got {means} and {stds}")
    stacked = np.repeat(arr[None, :, :], channels, axis=0)
    m = np.asarray(means, dtype=np.float32)[:, None, None]
    s = np.asarray(stds, dtype=np.float32)[:, None, None]
    out: FloatArray = ((stacked - m) / s).astype(np.float32)
    return out


def preprocess(pixels: npt.ArrayLike, image_size: int, mean: float | Sequence[float] = 0.5,
               std: float | Sequence[float] = 0.25, channels: int = 1) -> FloatArray:
    """Resize and normalise one image: the exact input a radiolens model was trained on.

    Example:
        >>> x = preprocess(np.zeros((300, 200)), 64)
        >>> x.shape, x.dtype
        ((1, 64, 64), dtype('float32'))
    """
    return normalize(resize_square(pixels, image_size), mean, std, channels)
