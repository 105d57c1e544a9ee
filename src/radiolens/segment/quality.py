"""Is a lung mask plausible for a frontal chest radiograph? (numpy + SciPy only)

A mask that fails says "check image" in the triage service: the image may be a lateral
view, another body part, a heavily rotated or cropped film, or the network failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["MaskQuality", "assess_mask"]

#: Lungs cover about 0.15-0.55 of a frontal chest radiograph (0.36 on the ieee8023 masks).
MIN_AREA = 0.08
MAX_AREA = 0.70
#: The smaller lung is at least this fraction of the larger in a frontal view.
MIN_LUNG_RATIO = 0.25
#: The lungs' centre lies within this fraction of the width from the image centre.
MAX_CENTRE_OFFSET = 0.25
#: Mean network confidence inside the mask (|2p - 1|) below this: the network is unsure.
MIN_CONFIDENCE = 0.6


@dataclass(frozen=True)
class MaskQuality:
    """The verdict of :func:`assess_mask`: ``ok``, the reasons when not, and the figures."""

    ok: bool
    reasons: list[str] = field(default_factory=list)
    lung_fraction: float = 0.0
    lungs: int = 0
    lung_ratio: float = 0.0
    centre_offset: float = 0.0
    confidence: float | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures (for model outputs and the worklist)."""
        return {"ok": self.ok, "reasons": list(self.reasons),
                "lung_fraction": round(self.lung_fraction, 4), "lungs": self.lungs,
                "lung_ratio": round(self.lung_ratio, 4),
                "centre_offset": round(self.centre_offset, 4),
                "confidence": None if self.confidence is None else round(self.confidence, 4)}


def assess_mask(mask: npt.ArrayLike, probability: npt.ArrayLike | None = None) -> MaskQuality:
    """Check a cleaned lung mask: two lungs of sensible size, side by side, centred.

    Args:
        mask: the binary mask (after :func:`~radiolens.segment.clean_mask`).
        probability: the network's lung probability map, same shape, for a confidence check.

    Example:
        >>> m = np.zeros((100, 100), bool); m[20:80, 15:45] = m[20:80, 55:85] = True
        >>> assess_mask(m).ok
        True
        >>> assess_mask(np.zeros((100, 100), bool)).reasons
        ['no lung found']
    """
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"expected a 2-D mask, got shape {m.shape}")
    w = m.shape[1]
    area = float(m.mean())
    if not m.any():
        return MaskQuality(False, ["no lung found"])
    labelled, n = ndimage.label(m)
    sizes = np.sort(np.bincount(labelled.ravel())[1:])[::-1]
    ratio = float(sizes[1] / sizes[0]) if n >= 2 else 0.0
    cols = np.nonzero(m.any(axis=0))[0]
    centre = (cols[0] + cols[-1]) / 2.0
    offset = abs(centre - (w - 1) / 2.0) / w
    reasons: list[str] = []
    if n < 2 or ratio < MIN_LUNG_RATIO:
        reasons.append("one lung only" if n < 2 else
                       f"one lung is {ratio:.0%} of the other")
    if area < MIN_AREA:
        reasons.append(f"lungs cover {area:.0%} of the image (expected at least "
                       f"{MIN_AREA:.0%})")
    if area > MAX_AREA:
        reasons.append(f"lungs cover {area:.0%} of the image (expected at most "
                       f"{MAX_AREA:.0%})")
    if offset > MAX_CENTRE_OFFSET:
        reasons.append(f"lungs are off-centre by {offset:.0%} of the width")
    if n >= 2:
        boxes = ndimage.find_objects(labelled)
        two = [int(i) for i in np.argsort(np.bincount(labelled.ravel())[1:])[::-1][:2]]
        a, b = boxes[two[0]], boxes[two[1]]
        rows_overlap = min(a[0].stop, b[0].stop) - max(a[0].start, b[0].start)
        if rows_overlap < 0.3 * min(a[0].stop - a[0].start, b[0].stop - b[0].start):
            reasons.append("the two lung regions are not side by side (not a frontal view?)")
    confidence = None
    if probability is not None:
        p = np.asarray(probability, dtype=np.float32)
        if p.shape != m.shape:
            raise ValueError(f"probability map {p.shape} and mask {m.shape} differ in shape")
        confidence = float(np.abs(2.0 * p[m] - 1.0).mean())
        if confidence < MIN_CONFIDENCE:
            reasons.append(f"the network is unsure of the lung borders (confidence "
                           f"{confidence:.2f})")
    return MaskQuality(not reasons, reasons, area, int(n), ratio, float(offset), confidence)
