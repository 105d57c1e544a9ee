"""Lung segmentation: U-Net training, masks with the post-processing a radiologist
expects, a plausibility check, and the lung-field crop the classifiers can use.

The torch-free parts (:mod:`~radiolens.segment.info`, :mod:`~radiolens.segment.postprocess`,
:mod:`~radiolens.segment.quality`, :mod:`~radiolens.segment.metrics`,
:mod:`~radiolens.segment.crop`) import without torch; training and inference need the
``train`` extra.

Example:
    >>> from radiolens.segment import LungSegmenter            # doctest: +SKIP
    >>> seg = LungSegmenter("builtin:lungs").load()             # doctest: +SKIP
    >>> result = seg.segment(image.pixels)                      # doctest: +SKIP
    >>> result.mask.shape == image.pixels.shape, result.quality.ok  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radiolens.segment.crop import LungBox, crop_box, lung_box
from radiolens.segment.info import SEG_FORMAT, SegModelInfo, read_seg_info
from radiolens.segment.metrics import SegScores, score_masks
from radiolens.segment.postprocess import clean_mask
from radiolens.segment.quality import MaskQuality, assess_mask

if TYPE_CHECKING:
    from radiolens.segment.predictor import LungSegmenter, Segmentation

__all__ = [
    "SEG_FORMAT",
    "LungBox",
    "LungSegmenter",
    "MaskQuality",
    "SegModelInfo",
    "SegScores",
    "Segmentation",
    "assess_mask",
    "clean_mask",
    "crop_box",
    "lung_box",
    "read_seg_info",
    "score_masks",
]


def __getattr__(name: str) -> Any:
    if name in ("LungSegmenter", "Segmentation"):
        from radiolens.segment import predictor

        return getattr(predictor, name)
    raise AttributeError(name)
