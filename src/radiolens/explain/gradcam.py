"""Grad-CAM with MONAI, and a colour overlay a radiologist can look at."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["gradcam", "overlay_heatmap"]

#: One MONAI GradCAM per model: each GradCAM registers hooks on the model that MONAI never
#: removes, so building one per call slowed every later call and leaked memory.
_CAMS: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, Any]] = weakref.WeakKeyDictionary()


def _cam_for(model: torch.nn.Module, layer: str) -> Any:
    from monai.visualize import GradCAM

    per_model = _CAMS.setdefault(model, {})
    if layer not in per_model:
        per_model[layer] = GradCAM(nn_module=model, target_layers=layer)
    return per_model[layer]


def gradcam(model: torch.nn.Module, architecture: str, x: npt.ArrayLike, class_index: int,
            output_shape: Sequence[int] | None = None) -> npt.NDArray[np.float32]:
    """Grad-CAM of one preprocessed input ``(C, S, S)`` for output ``class_index``.

    Args:
        model: the classifier (eval mode is kept; gradients are enabled locally).
        architecture: its radiolens name, which picks the target layer.
        x: the preprocessed input.
        class_index: which output to explain.
        output_shape: ``(H, W)`` to resize the map to (default ``(S, S)``).

    Returns:
        ``float32`` heatmap in [0, 1] (all zeros when the model gives no gradient signal).
    """
    from radiolens.models import gradcam_target_layer

    device = next(model.parameters()).device
    inp = torch.as_tensor(np.asarray(x, dtype=np.float32))[None].to(device)
    was_training = model.training
    model.eval()
    with torch.enable_grad():
        cam = _cam_for(model, gradcam_target_layer(architecture))
        heat = cam(x=inp, class_idx=class_index)
    model.train(was_training)
    arr = heat.detach().float().cpu().numpy()[0, 0]
    arr = np.nan_to_num(arr, nan=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    if output_shape is not None and tuple(output_shape) != arr.shape:
        from PIL import Image

        img = Image.fromarray(arr.astype(np.float32), mode="F")
        arr = np.asarray(img.resize((int(output_shape[1]), int(output_shape[0])),
                                    Image.Resampling.BILINEAR), dtype=np.float32)
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def overlay_heatmap(pixels: npt.ArrayLike, heat: npt.ArrayLike,
                    alpha: float = 0.4) -> npt.NDArray[np.uint8]:
    """Blend a heatmap (jet colour map) onto a greyscale radiograph: ``(H, W, 3)`` uint8."""
    from matplotlib import colormaps

    grey = np.asarray(pixels, dtype=np.float32)
    h = np.asarray(heat, dtype=np.float32)
    if h.shape != grey.shape:
        from PIL import Image

        h = np.asarray(Image.fromarray(h, mode="F").resize(
            (grey.shape[1], grey.shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)
    coloured = colormaps["jet"](np.clip(h, 0, 1))[..., :3]
    weight = alpha * np.clip(h, 0, 1)[..., None]
    rgb = (1 - weight) * grey[..., None] + weight * coloured
    out: npt.NDArray[np.uint8] = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    return out
