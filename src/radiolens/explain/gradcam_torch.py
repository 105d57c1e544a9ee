"""Grad-CAM with MONAI (the torch path; :mod:`radiolens.explain.cam` needs no torch)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["gradcam"]

#: One MONAI GradCAM per model: each GradCAM registers hooks on the model that MONAI never
#: removes, so building one per call slowed every later call and leaked memory.
#: MONAI's default post-processing (``default_normalizer``) maps the map's minimum to 1 and
#: its maximum to 0, which turns the heatmap inside out (MONAI tutorials issue #1796): the
#: regions the network ignores would glow. The raw map is kept and scaled 0..1 here.
_CAMS: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, Any]] = weakref.WeakKeyDictionary()


def _keep(x: torch.Tensor) -> torch.Tensor:
    return x


def _cam_for(model: torch.nn.Module, layer: str) -> Any:
    from monai.visualize import GradCAM

    per_model = _CAMS.setdefault(model, {})
    if layer not in per_model:
        per_model[layer] = GradCAM(nn_module=model, target_layers=layer,
                                   postprocessing=_keep)
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
    from radiolens.explain.cam import normalise_map, resize_map

    arr = normalise_map(heat.detach().float().cpu().numpy()[0, 0])
    if output_shape is not None:
        arr = resize_map(arr, output_shape)
    return np.clip(arr, 0.0, 1.0).astype(np.float32)
