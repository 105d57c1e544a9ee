"""Torch datasets over a :class:`~radiolens.data.datalist.Datalist`.

Images are decoded and resized once (:func:`load_images`, which reports every unreadable
file at the end rather than stopping at the first), kept in memory as float16, and
augmented on the fly with MONAI array transforms. Labels keep NaN for "not known"; the
loss masks them out (:func:`masked_bce_loss`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from radiolens.data.preprocess import resize_square
from radiolens.errors import DatasetError, ImageReadError

__all__ = [
    "LoadedImages",
    "LungPreparation",
    "XrayDataset",
    "load_images",
    "masked_bce_loss",
    "positive_weights",
    "train_augmentation",
]

logger = logging.getLogger(__name__)


@dataclass
class LoadedImages:
    """Resized images of a datalist: ``squares[i]`` belongs to ``items[i]``; ``masks``:
    their lung masks at the same size, when the images were read with ``lungs``."""

    squares: npt.NDArray[np.float16]
    items: list[dict[str, Any]]
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    masks: npt.NDArray[np.float16] | None = None


@dataclass(frozen=True)
class LungPreparation:
    """How to use the lungs when reading images: a loaded
    :class:`~radiolens.segment.LungSegmenter`, crop or not, dim factor or ``None``."""

    segmenter: Any
    crop: bool
    dim: float | None
    margin: float = 0.05


def load_images(items: Sequence[dict[str, Any]], image_size: int, *, progress: bool = False,
                skip_unreadable: bool = False, desc: str = "reading images",
                lungs: LungPreparation | None = None) -> LoadedImages:
    """Read and resize every item's image to ``image_size`` squares in [0, 1].

    Args:
        items: datalist items (each with an ``"image"`` path).
        image_size: side of the square.
        progress: show a progress bar.
        skip_unreadable: leave unreadable images out (listed in ``unreadable`` and logged)
            instead of raising.
        lungs: segment each image and crop or dim it as the model's preprocessing says
            (exactly as :meth:`radiolens.inference.Predictor.prepare` does); the masks are
            kept in ``masks``.

    Raises:
        DatasetError: one or more images cannot be read (all are listed) and
            ``skip_unreadable`` is false.
    """
    from tqdm.auto import tqdm

    from radiolens.imaging import read_image

    kept: list[dict[str, Any]] = []
    arrays: list[npt.NDArray[np.float16]] = []
    masks: list[npt.NDArray[np.float16]] = []
    bad: list[tuple[str, str]] = []
    for item in tqdm(items, desc=desc, unit="img", disable=not progress, leave=False):
        try:
            img = read_image(item["image"])
        except ImageReadError as exc:
            bad.append((str(item["image"]), str(exc)))
            continue
        pixels = img.pixels
        if lungs is not None:
            from radiolens.data.preprocess import lung_view

            mask = lungs.segmenter.segment(pixels).mask
            pixels, vmask, _ = lung_view(pixels, mask, crop=lungs.crop, dim=lungs.dim,
                                         margin=lungs.margin)
            masks.append(resize_square(vmask, image_size).astype(np.float16))
        arrays.append(resize_square(pixels, image_size).astype(np.float16))
        kept.append(dict(item))
    if bad:
        listing = "\n  ".join(msg for _, msg in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        if not skip_unreadable:
            raise DatasetError(f"{len(bad)} of {len(items)} images cannot be read:\n  "
                               f"{listing}{more}\nfix or remove them, or pass "
                               "--skip-unreadable to leave them out")
        logger.warning("left out %d unreadable images:\n  %s%s", len(bad), listing, more)
    if not arrays:
        raise DatasetError("no readable images; check the image paths and --images-root")
    return LoadedImages(np.stack(arrays), kept, bad,
                        np.stack(masks) if lungs is not None else None)


def train_augmentation(image_size: int, seed: int = 0, shortcuts: bool = False
                       ) -> Callable[[torch.Tensor], torch.Tensor]:
    """MONAI augmentation for chest radiographs: small rotations, zoom, shifts, brightness
    and contrast. No flips: a left-right flip moves the heart to the wrong side.

    Spatial transforms apply to every channel of the input (so a lung mask stacked as
    channel 1 moves with the image); intensity transforms to channel 0 only.

    Args:
        shortcuts: also break border and marker shortcuts: stronger zoom and shifts (the
            film's edges move), and random rectangles blanked (side markers, text, tubes).
    """
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandAffine,
        RandCoarseDropout,
        RandScaleIntensity,
        RandShiftIntensity,
    )

    shift = (0.12 if shortcuts else 0.06) * image_size
    zoom = (0.25, 0.25) if shortcuts else (0.1, 0.1)
    spatial = RandAffine(prob=0.8, rotate_range=(np.deg2rad(8),), scale_range=zoom,
                         translate_range=(shift, shift),
                         padding_mode="zeros" if shortcuts else "border")
    steps: list[Any] = [
        RandScaleIntensity(factors=0.1, prob=0.5),
        RandShiftIntensity(offsets=0.05, prob=0.5),
        RandAdjustContrast(prob=0.3, gamma=(0.8, 1.25)),
    ]
    if shortcuts:
        side = max(2, image_size // 10)
        steps.append(RandCoarseDropout(holes=2, max_holes=6, spatial_size=(side, side),
                                       fill_value=0.0, prob=0.5))
    intensity = Compose(steps)
    spatial.set_random_state(seed=seed)
    intensity.set_random_state(seed=seed + 1)

    def apply(x: torch.Tensor) -> torch.Tensor:
        moved = torch.as_tensor(spatial(x))
        first = torch.as_tensor(intensity(moved[:1])).clamp_(0.0, 1.0)
        return torch.cat([first, moved[1:]], dim=0) if moved.shape[0] > 1 else first

    return apply


class XrayDataset(Dataset[dict[str, Any]]):
    """Model inputs and masked labels from :class:`LoadedImages`.

    Each sample is ``{"image": (C, S, S) float32, "label": (L,) float32 with NaN,
    "index": int}``.

    Example:
        >>> ds = XrayDataset(loaded, mean=0.5, std=0.25)   # doctest: +SKIP
    """

    def __init__(self, loaded: LoadedImages, mean: float | Sequence[float] = 0.5,
                 std: float | Sequence[float] = 0.25, channels: int = 1,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.loaded = loaded
        self.channels = channels
        means = [float(mean)] * channels if isinstance(mean, (int, float)) else list(mean)
        stds = [float(std)] * channels if isinstance(std, (int, float)) else list(std)
        self._mean = torch.tensor(means, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(stds, dtype=torch.float32)[:, None, None]
        self.augment = augment
        self._labels = np.stack([np.asarray(it["label"], dtype=np.float32)
                                 for it in loaded.items])

    def __len__(self) -> int:
        return len(self.loaded.items)

    @property
    def labels(self) -> npt.NDArray[np.float32]:
        """``(N, L)`` label matrix with NaN for unknown."""
        return self._labels

    def __getitem__(self, index: int) -> dict[str, Any]:
        x = torch.from_numpy(self.loaded.squares[index].astype(np.float32))[None]
        masks = self.loaded.masks
        if masks is not None:
            x = torch.cat([x, torch.from_numpy(masks[index].astype(np.float32))[None]])
        if self.augment is not None:
            x = self.augment(x)
        lung = x[1:2] if masks is not None else None
        x = (x[:1].expand(self.channels, -1, -1) - self._mean) / self._std
        sample = {"image": x.contiguous(), "label": torch.from_numpy(self._labels[index]),
                  "index": index}
        if lung is not None:
            sample["lung"] = lung.contiguous()
        return sample


def positive_weights(labels: npt.ArrayLike, max_weight: float = 50.0) -> torch.Tensor:
    """``negatives / positives`` per label (ignoring NaN), for ``BCEWithLogits(pos_weight)``.

    Labels with no positives get weight 1.
    """
    y = np.asarray(labels, dtype=np.float64)
    pos = np.nansum(y == 1, axis=0).astype(np.float64)
    neg = np.nansum(y == 0, axis=0).astype(np.float64)
    w = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return torch.tensor(np.clip(w, 1.0 / max_weight, max_weight), dtype=torch.float32)


def masked_bce_loss(logits: torch.Tensor, target: torch.Tensor,
                    pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy over the known labels only (NaN targets are masked out)."""
    mask = ~torch.isnan(target)
    safe = torch.where(mask, target, torch.zeros_like(target))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), safe.float(), pos_weight=pos_weight, reduction="none")
    denom = mask.sum().clamp(min=1)
    return (loss * mask).sum() / denom


