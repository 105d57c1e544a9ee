"""Class activation maps from the last feature map, without torch.

For a network that ends in global average pooling and one linear layer (DenseNet-121,
ResNet-18/50 here), Grad-CAM at the last feature map equals the class activation map:
the gradient of output ``c`` with respect to feature ``k`` is the head weight ``W[c, k]``
divided by the number of positions, the same at every position, so Grad-CAM's channel
weights are ``W[c]`` up to a constant factor. The exported ONNX model returns these maps
(``cams``, ``(N, labels, h, w)``) beside the logits, so ONNX Runtime and OpenVINO give
the heatmap from the same forward pass that scored the image: no backward pass, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["cam_heatmap", "normalise_map", "resize_map"]


def resize_map(arr: npt.ArrayLike, shape: Sequence[int]) -> npt.NDArray[np.float32]:
    """Bilinear resize of a 2-D float map to ``(H, W)`` (pixel centres aligned, edges
    clamped: what ``torch.nn.functional.interpolate(..., align_corners=False)`` does when
    enlarging)."""
    from PIL import Image

    a = np.asarray(arr, dtype=np.float32)
    if tuple(shape) == a.shape:
        return a
    img = Image.fromarray(a, mode="F")
    return np.asarray(img.resize((int(shape[1]), int(shape[0])), Image.Resampling.BILINEAR),
                      dtype=np.float32)


def normalise_map(arr: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Scale a map to [0, 1] (all zeros when it is flat; NaN counts as 0)."""
    arr = np.nan_to_num(arr, nan=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    out: npt.NDArray[np.float32] = ((arr - lo) / (hi - lo) if hi > lo
                                    else np.zeros_like(arr)).astype(np.float32)
    return out


def cam_heatmap(cam: npt.ArrayLike, input_size: int,
                output_shape: Sequence[int] | None = None) -> npt.NDArray[np.float32]:
    """A heatmap in [0, 1] from one label's activation map ``(h, w)``.

    The steps are Grad-CAM's as MONAI does them: keep the positive part, enlarge to the
    network's input size, scale to [0, 1]; then resize to ``output_shape`` (the image's or
    lung box's size) as :func:`radiolens.explain.gradcam` does.
    """
    positive = np.maximum(np.asarray(cam, dtype=np.float32), 0.0)
    heat = normalise_map(resize_map(positive, (input_size, input_size)))
    if output_shape is not None:
        heat = resize_map(heat, output_shape)
    return np.clip(heat, 0.0, 1.0).astype(np.float32)
