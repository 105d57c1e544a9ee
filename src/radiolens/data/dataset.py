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
    "XrayDataset",
    "load_images",
    "masked_bce_loss",
    "positive_weights",
    "train_augmentation",
]

logger = logging.getLogger(__name__)


@dataclass
class LoadedImages:
    """Resized images of a datalist: ``squares[i]`` belongs to ``items[i]``."""

    squares: npt.NDArray[np.float16]
    items: list[dict[str, Any]]
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def load_images(items: Sequence[dict[str, Any]], image_size: int, *, progress: bool = False,
                skip_unreadable: bool = False, desc: str = "reading images") -> LoadedImages:
    """Read and resize every item's image to ``image_size`` squares in [0, 1].

    Args:
        items: datalist items (each with an ``"image"`` path).
        image_size: side of the square.
        progress: show a progress bar.
        skip_unreadable: leave unreadable images out (listed in ``unreadable`` and logged)
            instead of raising.

    Raises:
        DatasetError: one or more images cannot be read (all are listed) and
            ``skip_unreadable`` is false.
    """
    from tqdm.auto import tqdm

    from radiolens.imaging import read_image

    kept: list[dict[str, Any]] = []
    arrays: list[npt.NDArray[np.float16]] = []
    bad: list[tuple[str, str]] = []
    for item in tqdm(items, desc=desc, unit="img", disable=not progress, leave=False):
        try:
            img = read_image(item["image"])
        except ImageReadError as exc:
            bad.append((str(item["image"]), str(exc)))
            continue
        arrays.append(resize_square(img.pixels, image_size).astype(np.float16))
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
    return LoadedImages(np.stack(arrays), kept, bad)


def train_augmentation(image_size: int, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """MONAI augmentation for chest radiographs: small rotations, zoom, shifts, brightness
    and contrast. No flips: a left-right flip moves the heart to the wrong side."""
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandAffine,
        RandScaleIntensity,
        RandShiftIntensity,
    )

    shift = 0.06 * image_size
    aug = Compose([
        RandAffine(prob=0.8, rotate_range=(np.deg2rad(8),), scale_range=(0.1, 0.1),
                   translate_range=(shift, shift), padding_mode="border"),
        RandScaleIntensity(factors=0.1, prob=0.5),
        RandShiftIntensity(offsets=0.05, prob=0.5),
        RandAdjustContrast(prob=0.3, gamma=(0.8, 1.25)),
    ])
    aug.set_random_state(seed=seed)

    def apply(x: torch.Tensor) -> torch.Tensor:
        out = aug(x)
        return torch.as_tensor(out).clamp_(0.0, 1.0)

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
        if self.augment is not None:
            x = self.augment(x)
        x = (x.expand(self.channels, -1, -1) - self._mean) / self._std
        return {"image": x.contiguous(), "label": torch.from_numpy(self._labels[index]),
                "index": index}


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


