"""Where a heatmap lies: the fraction of its mass inside the lungs (numpy only).

"Heat in lungs" is ``sum(heat * lung) / sum(heat)`` at the image's size. A uniform map
scores the lungs' share of the image (about 0.36 on adult radiographs); a model that
looks at the lungs scores near 1. Below :data:`ATTENTION_OUTSIDE` a flagged study says
"AI attention outside the lungs: check".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ATTENTION_OUTSIDE", "ATTENTION_WARNING", "attention_outside", "heat_in_lungs",
           "heat_to_uint8"]

#: Heat in lungs below this: the explanation mostly lies outside the lungs.
ATTENTION_OUTSIDE = 0.5
#: The words the draft, the worklist and the API use for it.
ATTENTION_WARNING = "AI attention outside the lungs: check"


def heat_in_lungs(heat: npt.ArrayLike, mask: npt.ArrayLike) -> float | None:
    """Fraction of the heatmap's mass inside ``mask`` (same shape); ``None`` for an
    all-zero heatmap or an empty mask.

    Example:
        >>> heat = np.zeros((4, 4)); heat[:, :2] = 1.0
        >>> mask = np.zeros((4, 4), bool); mask[:, :1] = True
        >>> heat_in_lungs(heat, mask)
        0.5
    """
    h = np.clip(np.asarray(heat, dtype=np.float64), 0.0, None)
    m = np.asarray(mask).astype(bool)
    if h.shape != m.shape:
        raise ValueError(f"heatmap {h.shape} and lung mask {m.shape} differ in shape")
    total = float(h.sum())
    if total <= 0.0 or not m.any():
        return None
    return float(h[m].sum() / total)


def attention_outside(fraction: float | None) -> bool:
    """Whether a heat-in-lungs fraction calls for the warning."""
    return fraction is not None and fraction < ATTENTION_OUTSIDE


def heat_to_uint8(heat: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """A [0, 1] heatmap as 8-bit greyscale (0..255 relative importance)."""
    out: npt.NDArray[np.uint8] = (np.clip(np.asarray(heat, dtype=np.float32), 0, 1) * 255
                                  ).round().astype(np.uint8)
    return out
