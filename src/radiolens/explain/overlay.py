"""A colour overlay of a heatmap on the radiograph, for a radiologist to look at."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["overlay_heatmap"]


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
