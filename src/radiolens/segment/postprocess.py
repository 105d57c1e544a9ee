"""Mask post-processing: keep the two lungs, fill their holes (numpy + SciPy only)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["clean_mask"]

BoolArray = npt.NDArray[np.bool_]

#: A component smaller than this fraction of the largest is noise, not a second lung.
MIN_SECOND_LUNG = 0.05


def clean_mask(mask: npt.ArrayLike, keep: int = 2) -> BoolArray:
    """The ``keep`` largest connected components of a binary mask, holes filled.

    A second component smaller than :data:`MIN_SECOND_LUNG` of the largest is dropped
    (a speck is not a lung); the quality check then reports one lung.

    Example:
        >>> m = np.zeros((20, 20), bool); m[2:10, 2:8] = m[2:10, 12:18] = True; m[15, 15] = True
        >>> int(clean_mask(m).sum())
        96
    """
    m = np.asarray(mask).astype(bool)
    labelled, n = ndimage.label(m)
    if n == 0:
        return np.zeros_like(m)
    sizes = np.bincount(labelled.ravel())[1:]
    order = np.argsort(sizes)[::-1][:keep]
    largest = sizes[order[0]]
    kept = [int(i) + 1 for i in order if sizes[i] >= MIN_SECOND_LUNG * largest]
    out = np.isin(labelled, kept)
    filled: BoolArray = np.zeros_like(out)
    for lab in kept:
        filled |= ndimage.binary_fill_holes(labelled == lab)
    return filled | out
