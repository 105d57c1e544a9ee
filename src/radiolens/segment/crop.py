"""The lung-field crop: the box around both lungs, with a margin (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LungBox", "crop_box", "lung_box", "paste_box"]

#: Margin around the lungs, as a fraction of the box's size on each side.
DEFAULT_MARGIN = 0.05


@dataclass(frozen=True)
class LungBox:
    """Pixel box ``[top, bottom) x [left, right)`` in the image."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left


def lung_box(mask: npt.ArrayLike, margin: float = DEFAULT_MARGIN) -> LungBox:
    """The box around the mask's pixels, grown by ``margin``; the whole image when the
    mask is empty (so a failed segmentation never blanks the classifier's input).

    Example:
        >>> m = np.zeros((100, 100), bool); m[20:80, 10:90] = True
        >>> lung_box(m, margin=0.0)
        LungBox(top=20, bottom=80, left=10, right=90)
    """
    m = np.asarray(mask).astype(bool)
    h, w = m.shape
    rows = np.nonzero(m.any(axis=1))[0]
    cols = np.nonzero(m.any(axis=0))[0]
    if rows.size == 0:
        return LungBox(0, h, 0, w)
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    dy = round(margin * (bottom - top))
    dx = round(margin * (right - left))
    return LungBox(max(0, top - dy), min(h, bottom + dy), max(0, left - dx), min(w, right + dx))


def crop_box(pixels: npt.ArrayLike, box: LungBox) -> npt.NDArray[np.float32]:
    """The part of a 2-D image inside ``box``."""
    arr = np.asarray(pixels, dtype=np.float32)
    return arr[box.top:box.bottom, box.left:box.right]


def paste_box(values: npt.ArrayLike, box: LungBox, shape: tuple[int, int]
              ) -> npt.NDArray[np.float32]:
    """Put a map computed on the crop back into a zero image of ``shape``."""
    out = np.zeros(shape, dtype=np.float32)
    out[box.top:box.bottom, box.left:box.right] = np.asarray(values, dtype=np.float32)
    return out
