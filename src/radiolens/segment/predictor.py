"""Lung masks for radiographs: network, upsampling to the image, post-processing, check."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from radiolens.data.preprocess import resize_square
from radiolens.errors import ConfigError
from radiolens.segment.postprocess import clean_mask
from radiolens.segment.quality import MaskQuality, assess_mask

__all__ = ["LungSegmenter", "Segmentation", "resize_map"]


def resize_map(values: npt.ArrayLike, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Bilinear resize of a float map to ``(H, W)`` (Pillow)."""
    from PIL import Image

    arr = np.asarray(values, dtype=np.float32)
    if arr.shape == tuple(shape):
        return arr
    img = Image.fromarray(arr, mode="F").resize((int(shape[1]), int(shape[0])),
                                                Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


@dataclass(frozen=True)
class Segmentation:
    """A lung mask at the input image's size, the network's probability map and the
    plausibility verdict."""

    mask: npt.NDArray[np.bool_]
    probability: npt.NDArray[np.float32]
    quality: MaskQuality

    def as_png_array(self) -> npt.NDArray[np.uint8]:
        """The mask as 8-bit: 0 background, 255 lung."""
        return (self.mask.astype(np.uint8) * 255)


class LungSegmenter:
    """Lung segmentation with a ``radiolens train-seg`` run directory or ``builtin:lungs``.

    Example:
        >>> seg = LungSegmenter("builtin:lungs").load()           # doctest: +SKIP
        >>> seg.segment(pixels).mask.shape == pixels.shape        # doctest: +SKIP
        True
    """

    def __init__(self, checkpoint: str | os.PathLike[str] = "builtin:lungs",
                 device: str = "cpu", batch_size: int = 8) -> None:
        self.checkpoint = checkpoint
        self.device = device
        self.batch_size = batch_size

    def load(self) -> LungSegmenter:
        """Read the network."""
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        from radiolens.segment.run import load_seg_run

        self.model_, self.info_ = load_seg_run(self.checkpoint, device=self.device)
        return self

    def _inputs(self, images: Sequence[npt.ArrayLike]) -> npt.NDArray[np.float32]:
        info = self.info_
        squares = [resize_square(np.asarray(im, dtype=np.float32), info.image_size)
                   for im in images]
        return ((np.stack(squares)[:, None] - info.mean) / info.std).astype(np.float32)

    def probabilities(self, images: Sequence[npt.ArrayLike]) -> list[npt.NDArray[np.float32]]:
        """Lung probability maps at each image's own size."""
        import torch

        if not hasattr(self, "model_"):
            raise RuntimeError("call LungSegmenter.load() first")
        out: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            with torch.inference_mode():
                x = torch.from_numpy(self._inputs(chunk)).to(self.device)
                probs = torch.sigmoid(self.model_(x).float()).cpu().numpy()[:, 0]
            out.extend(resize_map(p, np.asarray(im).shape[:2])
                       for p, im in zip(probs, chunk, strict=True))
        return out

    def segment_many(self, images: Sequence[npt.ArrayLike]) -> list[Segmentation]:
        """:meth:`segment` for several images, batched."""
        results = []
        for prob in self.probabilities(images):
            mask = clean_mask(prob >= self.info_.threshold)
            results.append(Segmentation(mask, prob, assess_mask(mask, prob)))
        return results

    def segment(self, image: npt.ArrayLike) -> Segmentation:
        """The lung mask of one 2-D image in [0, 1], at its size."""
        return self.segment_many([image])[0]
