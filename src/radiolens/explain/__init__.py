"""Explanations: Grad-CAM heatmaps (MONAI), class activation maps without torch, overlays
on the radiograph, and how much of a heatmap lies inside the lungs.

``gradcam`` imports torch on first use; everything else here is torch-free.
"""

from __future__ import annotations

from typing import Any

from radiolens.explain.cam import cam_heatmap
from radiolens.explain.lungs import (
    ATTENTION_OUTSIDE,
    ATTENTION_WARNING,
    attention_outside,
    heat_in_lungs,
    heat_to_uint8,
)
from radiolens.explain.overlay import overlay_heatmap

__all__ = ["ATTENTION_OUTSIDE", "ATTENTION_WARNING", "attention_outside", "cam_heatmap",
           "gradcam", "heat_in_lungs", "heat_to_uint8", "overlay_heatmap"]


def __getattr__(name: str) -> Any:
    if name == "gradcam":
        from radiolens.explain.gradcam_torch import gradcam

        return gradcam
    raise AttributeError(f"module 'radiolens.explain' has no attribute {name!r}")
