"""Explanations: Grad-CAM heatmaps (MONAI), overlays on the radiograph, and how much of
a heatmap lies inside the lungs."""

from __future__ import annotations

from radiolens.explain.gradcam import gradcam, overlay_heatmap
from radiolens.explain.lungs import (
    ATTENTION_OUTSIDE,
    ATTENTION_WARNING,
    attention_outside,
    heat_in_lungs,
    heat_to_uint8,
)

__all__ = ["ATTENTION_OUTSIDE", "ATTENTION_WARNING", "attention_outside", "gradcam",
           "heat_in_lungs", "heat_to_uint8", "overlay_heatmap"]
