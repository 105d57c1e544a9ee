"""Segmentation scores per image: Dice, IoU and the 95th-percentile Hausdorff distance,
with percentile-bootstrap confidence intervals of their means (SciPy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["SegScores", "dice", "hd95", "iou", "mean_ci", "score_masks"]


def dice(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty).

    Example:
        >>> a = np.zeros((4, 4), bool); a[:2] = True
        >>> dice(a, a), round(dice(a, np.ones((4, 4), bool)), 3)
        (1.0, 0.667)
    """
    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    denom = int(p.sum()) + int(t.sum())
    return 1.0 if denom == 0 else 2.0 * int((p & t).sum()) / denom


def iou(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Intersection over union (Jaccard) of two binary masks (1.0 when both are empty)."""
    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    union = int((p | t).sum())
    return 1.0 if union == 0 else int((p & t).sum()) / union


def hd95(pred: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """95th-percentile symmetric Hausdorff distance between the masks' borders, in pixels
    (MONAI's ``compute_hausdorff_distance``); NaN when either mask is empty."""
    import torch
    from monai.metrics import compute_hausdorff_distance

    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    if not p.any() or not t.any():
        return float("nan")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI 1.5 deprecation inside
        value = compute_hausdorff_distance(torch.from_numpy(p)[None, None],
                                           torch.from_numpy(t)[None, None], percentile=95)
    return float(value.item())


def mean_ci(values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05,
            seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile-bootstrap CI of the mean (``scipy.stats.bootstrap``); NaN values are
    left out; ``(None, None)`` with fewer than two values."""
    from scipy.stats import bootstrap

    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size < 2 or np.all(v == v[0]):
        return (None, None) if v.size < 2 else (float(v[0]), float(v[0]))
    res = bootstrap((v,), np.mean, n_resamples=n_boot, confidence_level=1 - alpha,
                    method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass
class SegScores:
    """Per-image scores and their means with CIs."""

    names: list[str]
    dice: list[float]
    iou: list[float]
    hd95: list[float]

    def summary(self, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
                ) -> dict[str, object]:
        """``{"n": .., "dice": {"mean", "median", "ci"}, ...}``, JSON-ready."""
        out: dict[str, object] = {"n": len(self.names)}
        for key in ("dice", "iou", "hd95"):
            vals = np.asarray(getattr(self, key), dtype=np.float64)
            finite = vals[np.isfinite(vals)]
            out[key] = {
                "mean": float(finite.mean()) if finite.size else None,
                "median": float(np.median(finite)) if finite.size else None,
                "ci": list(mean_ci(list(finite), n_boot, alpha, seed)),
                "n_undefined": int((~np.isfinite(vals)).sum()),
            }
        return out


def score_masks(pairs: Sequence[tuple[str, npt.ArrayLike, npt.ArrayLike]],
                with_hd95: bool = True) -> SegScores:
    """Score ``(name, predicted, truth)`` mask pairs of equal shape."""
    names, d, j, h = [], [], [], []
    for name, pred, truth in pairs:
        p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
        if p.shape != t.shape:
            raise ValueError(f"{name}: predicted mask {p.shape} and reference {t.shape} "
                             "differ in shape")
        names.append(name)
        d.append(dice(p, t))
        j.append(iou(p, t))
        h.append(hd95(p, t) if with_hd95 else float("nan"))
    return SegScores(names, d, j, h)
