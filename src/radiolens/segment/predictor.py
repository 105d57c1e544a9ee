"""Lung masks for radiographs: network, upsampling to the image, post-processing, check."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens.data.preprocess import resize_square
from radiolens.errors import CheckpointError, ConfigError, MissingDependencyError
from radiolens.segment.info import SegModelInfo, read_seg_info
from radiolens.segment.postprocess import clean_mask
from radiolens.segment.quality import MaskQuality, assess_mask

__all__ = ["LungSegmenter", "Segmentation", "resize_map"]

logger = logging.getLogger(__name__)


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
                 device: str = "cpu", batch_size: int = 8, backend: str = "auto",
                 threads: int = 2) -> None:
        self.checkpoint = checkpoint
        self.device = device
        self.batch_size = batch_size
        self.backend = backend
        self.threads = threads

    def load(self) -> LungSegmenter:
        """Read the network: ONNX Runtime (``backend`` ``onnx``, or ``auto`` on a CPU
        with onnxruntime installed; exported once and cached by weights hash, no torch
        needed after that) or PyTorch (``torch``, or any GPU device)."""
        import importlib.util

        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.backend not in ("auto", "torch", "onnx"):
            raise ConfigError(f"unknown segmentation backend {self.backend!r}; use auto, "
                              "torch or onnx")
        on_cpu = str(self.device) == "cpu"
        use_onnx = self.backend == "onnx" or (
            self.backend == "auto" and on_cpu
            and importlib.util.find_spec("onnxruntime") is not None)
        if use_onnx and not on_cpu:
            raise ConfigError("the onnx segmentation backend runs on the CPU; use "
                              "device='cpu' or backend='torch'")
        if use_onnx:
            try:
                self.session_, self.info_ = self._onnx_session()
                self.backend_ = "onnx"
                return self
            except (CheckpointError, MissingDependencyError) as exc:
                if self.backend == "onnx":
                    raise
                logger.warning("lung segmentation through ONNX Runtime is not possible (%s); "
                               "using PyTorch", exc)
        from radiolens.segment.run import load_seg_run

        self.model_, self.info_ = load_seg_run(self.checkpoint, device=self.device)
        self.backend_ = "torch"
        return self

    def _onnx_session(self) -> tuple[Any, SegModelInfo]:
        from radiolens.models.info import resolve_run_dir
        from radiolens.models.onnx_runtime import onnx_cache_path, onnx_session

        info = read_seg_info(self.checkpoint)
        folder = resolve_run_dir(self.checkpoint)
        cached = onnx_cache_path(folder, kind="onnx-seg")
        if not cached.is_file():
            from radiolens.segment.run import export_seg_onnx, load_seg_run

            model, _ = load_seg_run(self.checkpoint)
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
                os.replace(export_seg_onnx(model, info, Path(tmp) / "seg.onnx"), cached)
            logger.info("exported %s to ONNX once (cached in %s)", self.checkpoint, cached)
        return onnx_session(cached, threads=self.threads), info

    def _inputs(self, images: Sequence[npt.ArrayLike]) -> npt.NDArray[np.float32]:
        info = self.info_
        squares = [resize_square(np.asarray(im, dtype=np.float32), info.image_size)
                   for im in images]
        return ((np.stack(squares)[:, None] - info.mean) / info.std).astype(np.float32)

    def probabilities(self, images: Sequence[npt.ArrayLike]) -> list[npt.NDArray[np.float32]]:
        """Lung probability maps at each image's own size."""
        if not hasattr(self, "info_"):
            raise RuntimeError("call LungSegmenter.load() first")
        out: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            logits = self._logits(self._inputs(chunk))
            probs = (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)  # sigmoid
            out.extend(resize_map(p, np.asarray(im).shape[:2])
                       for p, im in zip(probs, chunk, strict=True))
        return out

    def _logits(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The network's logits ``(N, S, S)`` for a preprocessed batch ``(N, 1, S, S)``."""
        if self.backend_ == "onnx":
            return np.asarray(self.session_.run(["logits"], {"image": x})[0],
                              dtype=np.float32)[:, 0]
        import torch

        with torch.inference_mode():
            logits = self.model_(torch.from_numpy(x).to(self.device)).float()
        return logits.cpu().numpy()[:, 0]

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
