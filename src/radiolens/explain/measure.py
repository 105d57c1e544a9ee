"""Heat in lungs over a set of images: where a classifier's Grad-CAM maps lie, measured
against human lung masks (a table's ``mask`` column) or predicted ones (``builtin:lungs``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radiolens.explain.lungs import ATTENTION_OUTSIDE, heat_in_lungs

__all__ = ["masks_from_table", "measure_heat_in_lungs"]

logger = logging.getLogger(__name__)


def masks_from_table(path: str | os.PathLike[str], images_root: str | None = None
                     ) -> dict[str, Path]:
    """Image path (absolute) to its mask path for the rows of a table that have a mask;
    empty when the table has no ``mask`` column."""
    from radiolens.data.tables import open_csv, resolve_image

    table = Path(path)
    header, rows = open_csv(table)
    if "mask" not in header or "image" not in header:
        return {}
    root = Path(images_root) if images_root else table.parent
    out: dict[str, Path] = {}
    for _, row in rows:
        image, mask = (row.get("image") or "").strip(), (row.get("mask") or "").strip()
        if image and mask:
            out[str(resolve_image(image, root))] = resolve_image(mask, root)
    return out


def measure_heat_in_lungs(predictor: Any, images: Sequence[str | os.PathLike[str]], *,
                          masks: dict[str, Path] | None = None, segmenter: Any = None,
                          labels: Sequence[str] | None = None,
                          positives: dict[str, Sequence[bool]] | None = None,
                          progress: Callable[[Any], Any] | None = None,
                          n_boot: int = 1000) -> dict[str, Any]:
    """Grad-CAM heat in lungs per label over ``images``.

    Args:
        predictor: a loaded :class:`~radiolens.inference.Predictor`.
        images: image files.
        masks: image path to reference mask; images without one are skipped unless a
            ``segmenter`` gives a predicted mask.
        segmenter: a loaded :class:`~radiolens.segment.LungSegmenter` for predicted masks.
        labels: which of the model's labels (default all).
        positives: per label, which images are positive (also reported on those alone).

    Returns:
        ``{"masks": "reference"|"predicted"|"mixed", "n": .., "uniform": mean lung share
        of the image (what a uniform map scores), "labels": {name: {"mean", "median",
        "ci", "below_0.5", "positives_mean"}}}``.
    """
    from radiolens.imaging import read_image
    from radiolens.segment.metrics import mean_ci
    from radiolens.segment.train import read_mask

    names = list(labels or predictor.labels)
    values: dict[str, list[float]] = {n: [] for n in names}
    pos_values: dict[str, list[float]] = {n: [] for n in names}
    shares: list[float] = []
    kinds: set[str] = set()
    iterator = list(enumerate(images))
    for i, raw in (progress(iterator) if progress else iterator):
        key = str(Path(raw).absolute())
        pixels = read_image(Path(raw)).pixels
        if masks and key in masks:
            mask, kind = read_mask(masks[key]), "reference"
        elif segmenter is not None:
            mask, kind = segmenter.segment(pixels).mask, "predicted"
        else:
            continue
        if mask.shape != pixels.shape or not mask.any():
            logger.warning("%s: lung mask missing or of another size; left out", Path(raw).name)
            continue
        kinds.add(kind)
        shares.append(float(mask.mean()))
        model_mask = mask if predictor.uses_lungs else None
        for name in names:
            frac = heat_in_lungs(predictor.explain(pixels, name, mask=model_mask), mask)
            if frac is None:
                continue
            values[name].append(frac)
            if positives and positives.get(name) is not None and positives[name][i]:
                pos_values[name].append(frac)
    out: dict[str, Any] = {
        "masks": kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none"),
        "n": len(shares),
        "uniform": float(np.mean(shares)) if shares else None,
        "labels": {},
    }
    for name in names:
        v = values[name]
        pv = pos_values[name]
        out["labels"][name] = {
            "mean": float(np.mean(v)) if v else None,
            "median": float(np.median(v)) if v else None,
            "ci": list(mean_ci(v, n_boot=n_boot)),
            f"below_{ATTENTION_OUTSIDE}": int(sum(x < ATTENTION_OUTSIDE for x in v)),
            "n": len(v),
            "positives_mean": float(np.mean(pv)) if pv else None,
            "positives_n": len(pv),
        }
    return out
