"""Explanations: Grad-CAM heatmaps (MONAI) and overlays on the radiograph."""

from __future__ import annotations

from radiolens.explain.gradcam import gradcam, overlay_heatmap

__all__ = ["gradcam", "overlay_heatmap"]
