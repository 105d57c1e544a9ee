"""The one preprocessing step shared by training, evaluation, prediction and the service.

A radiograph in [0, 1] (from :func:`radiolens.imaging.read_image`) is resized to a square
(``"squash"``: the aspect ratio is not kept, as in CheXNet and the Kermany paper), then
normalised with the model's mean and standard deviation. Numpy and Pillow only, so the
ONNX Runtime path needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["normalize", "preprocess", "resize_square"]

FloatArray = npt.NDArray[np.float32]


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
