"""``radiolens train-seg``: a lung U-Net on image/mask pairs, with the run-directory
conventions of the classifiers::

    RUN_DIR/model.safetensors   best weights (by validation Dice)
    RUN_DIR/model.json          network, input size, threshold, training and validation
    RUN_DIR/config.yaml         the resolved configuration
    RUN_DIR/history.csv         one row per epoch
    RUN_DIR/learning_curve.png  loss and validation Dice per epoch
    RUN_DIR/val_scores.csv      Dice, IoU, HD95 per validation image at full resolution
    RUN_DIR/MODEL_CARD.md       what it is for, how it was made, how well it does
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from radiolens.data.preprocess import resize_square
from radiolens.errors import ConfigError, DatasetError, ImageReadError
from radiolens.segment.info import SEG_ARCHITECTURES, SegModelInfo
from radiolens.segment.metrics import score_masks
from radiolens.segment.nets import build_seg_net, default_args
from radiolens.segment.postprocess import clean_mask
from radiolens.segment.predictor import resize_map
from radiolens.segment.run import save_seg_run
from radiolens.segment.table import MaskPair, read_mask_table, split_pairs

__all__ = ["SegTrainConfig", "SegTrainResult", "read_mask", "train_seg"]

logger = logging.getLogger(__name__)

HISTORY_FIELDS = ["epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds",
                  "train_images_per_s", "best"]


class SegTrainConfig(BaseModel):
    """Everything ``radiolens train-seg`` needs."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="label table with image and mask columns")
    output: str = Field(description="run directory to write")
    images_root: str | None = None
    where: dict[str, str] | None = None
    model: str = "unet"
    image_size: int = Field(192, ge=32, le=1024)
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    seed: int = 0
    val_fraction: float = Field(0.1, gt=0, lt=1)
    augment: bool = True
    patience: int = Field(15, ge=1)
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    limit: int | None = Field(None, ge=1, description="at most this many training pairs")


@dataclass
class SegTrainResult:
    """What a finished :func:`train_seg` reports."""

    run_dir: Path
    best_epoch: int
    epochs_run: int
    best_val_dice: float
    validation: dict[str, Any]
    seconds: float
    train_images_per_s: float


def read_mask(path: str | os.PathLike[str]) -> npt.NDArray[np.bool_]:
    """A mask PNG (any bit depth; non-zero is lung) as a boolean array.

    Raises:
        ImageReadError: not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ImageReadError(f"{Path(path).name}: not a readable mask image ({exc})") from None
    return arr > 127


def _load(pairs: Sequence[MaskPair], size: int, desc: str, progress: bool
          ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32],
                     list[npt.NDArray[np.bool_]], list[npt.NDArray[np.float32]]]:
    from tqdm.auto import tqdm

    from radiolens.imaging import read_image

    images, masks, full_masks, full_images = [], [], [], []
    bad: list[str] = []
    for pair in tqdm(pairs, desc=desc, unit="img", disable=not progress, leave=False):
        try:
            pixels = read_image(pair.image).pixels
            mask = read_mask(pair.mask)
        except ImageReadError as exc:
            bad.append(str(exc))
            continue
        if mask.shape != pixels.shape:
            bad.append(f"{pair.mask.name}: mask is {mask.shape[1]}x{mask.shape[0]} but its "
                       f"image is {pixels.shape[1]}x{pixels.shape[0]}")
            continue
        images.append(resize_square(pixels, size))
        masks.append(resize_map(mask.astype(np.float32), (size, size)))
        full_masks.append(mask)
        full_images.append(pixels)
    if bad:
        raise DatasetError(f"{len(bad)} image/mask pairs cannot be used:\n  "
                           + "\n  ".join(bad[:10]))
    return np.stack(images), np.stack(masks), full_masks, full_images


def _augmentation(size: int, seed: int) -> Any:
    from monai.transforms import (
        Compose,
        RandAdjustContrastd,
        RandAffined,
        RandGaussianNoised,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )

    shift = 0.08 * size
    aug = Compose([
        RandAffined(keys=["image", "mask"], prob=0.9, rotate_range=(np.deg2rad(10),),
                    scale_range=(0.15, 0.15), translate_range=(shift, shift),
                    shear_range=(0.05, 0.05), mode=("bilinear", "bilinear"),
                    padding_mode="zeros"),
        RandScaleIntensityd(keys="image", factors=0.15, prob=0.5),
        RandShiftIntensityd(keys="image", offsets=0.08, prob=0.5),
        RandAdjustContrastd(keys="image", prob=0.5, gamma=(0.7, 1.4)),
        RandGaussianNoised(keys="image", prob=0.2, std=0.02),
    ])
    aug.set_random_state(seed=seed)
    return aug


class _PairDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    def __init__(self, images: npt.NDArray[np.float32], masks: npt.NDArray[np.float32],
                 mean: float, std: float, augment: Any = None) -> None:
        self.images, self.masks, self.mean, self.std = images, masks, mean, std
        self.augment = augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.images[i])[None]
        y = torch.from_numpy(self.masks[i])[None]
        if self.augment is not None:
            out = self.augment({"image": x, "mask": y})
            x, y = torch.as_tensor(out["image"]), torch.as_tensor(out["mask"])
        x = (x.clamp(0.0, 1.0) - self.mean) / self.std
        return x.float().contiguous(), (y > 0.5).float().contiguous()


def _schedule(opt: torch.optim.Optimizer, total: int, warmup: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _predict(model: torch.nn.Module, images: npt.NDArray[np.float32], mean: float,
             std: float, device: torch.device, batch: int = 16) -> npt.NDArray[np.float32]:
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = torch.from_numpy((images[s:s + batch, None] - mean) / std).to(device)
            out.append(torch.sigmoid(model(x).float()).cpu().numpy()[:, 0])
    return np.concatenate(out)


def write_seg_card(run_dir: Path, info: SegModelInfo, name: str | None = None) -> None:
    """Write ``run_dir/MODEL_CARD.md`` for a segmentation model (``name``: as the card
    calls it; default the folder's name)."""
    v = info.validation
    dice = v.get("dice", {})
    ci = dice.get("ci") or [None, None]
    t = info.training
    lines = [
        f"# Lung segmentation: {name or run_dir.name}", "",
        "Assists; never replaces the radiologist. A lung mask for frontal chest radiographs, "
        "used to check images, crop the lung fields for the classifiers and measure where "
        "their heatmaps look. Not a diagnostic device.", "",
        "## Model", "",
        f"- Network: MONAI {info.architecture} {info.architecture_args}",
        f"- Input: {info.image_size} x {info.image_size} px (squashed), normalised "
        f"(x - {info.mean}) / {info.std}; output upsampled to the image, threshold "
        f"{info.threshold}, then {info.postprocess}.",
        "", "## Training", "",
        f"- Data: {t.get('data')} ({t.get('train_pairs')} training / {t.get('val_pairs')} "
        f"validation masks; {t.get('train_patients')} / {t.get('val_patients')} patients, "
        "split by patient)",
        "- Loss: Dice + BCE; augmentation on image and mask together (affine), intensity "
        "on the image; AdamW, cosine schedule",
        f"- {t.get('epochs_run')} epochs (best {t.get('best_epoch')}), "
        f"{t.get('wall_seconds')} s on {t.get('device')} ({t.get('torch_threads')} threads)",
        "", "## Validation (full resolution, after post-processing)", "",
        f"- Images: {v.get('n')}",
        f"- Dice: mean {dice.get('mean', float('nan')):.4f}"
        + (f" (95% CI {ci[0]:.4f}-{ci[1]:.4f})" if ci[0] is not None else ""),
        f"- IoU: mean {v.get('iou', {}).get('mean', float('nan')):.4f}",
        f"- HD95: mean {v.get('hd95', {}).get('mean', float('nan')):.1f} px",
        "", "## Limits", "",
        "- Trained on adult COVID-19 and other pneumonia radiographs; the reference masks "
        "include the retrocardiac lung, so they cover most of the heart. No cardiothoracic "
        "ratio can be derived from them, and radiolens computes none.",
        "- Lateral views, children and other body parts are outside its training data; the "
        "quality check flags implausible masks (\"check image\").",
    ]
    from radiolens._fs import write_atomic

    write_atomic(run_dir / "MODEL_CARD.md", ("\n".join(lines) + "\n").encode())


def train_seg(config: SegTrainConfig, *, progress: bool = False) -> SegTrainResult:
    """Train a lung segmentation network and write ``config.output``.

    Raises:
        DatasetError: the table, images or masks cannot be used.
        ConfigError: a setting is impossible (unknown model or device).
    """
    from monai.losses import DiceCELoss
    from tqdm.auto import tqdm

    from radiolens.devices import resolve_device

    if config.model not in SEG_ARCHITECTURES:
        raise ConfigError(f"unknown segmentation model {config.model!r}; choose from "
                          f"{', '.join(SEG_ARCHITECTURES)}")
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    pairs = read_mask_table(config.data, config.images_root, config.where)
    train_pairs, val_pairs = split_pairs(pairs, config.val_fraction, config.seed)
    if config.limit:
        train_pairs = train_pairs[:config.limit]
    if len(val_pairs) < 5:
        raise DatasetError(f"only {len(val_pairs)} validation masks; at least 5 are needed "
                           "to choose the best epoch (raise --val-fraction or add masks)")
    run_dir = Path(config.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
    size = config.image_size
    tr_x, tr_y, _, _ = _load(train_pairs, size, "reading training pairs", progress)
    va_x, va_y, va_full, _ = _load(val_pairs, size, "reading validation pairs", progress)
    mean, std = 0.5, 0.25
    logger.info("training %s on %d masks, validating on %d (%d px)", config.model, len(tr_x),
                len(va_x), size)
    args = default_args(config.model)
    model = build_seg_net(config.model, **args).to(device)
    ds = _PairDataset(tr_x, tr_y, mean, std,
                      _augmentation(size, config.seed) if config.augment else None)
    gen = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=config.batch_size, shuffle=True,
                                         drop_last=len(ds) > config.batch_size, generator=gen)
    loss_fn = DiceCELoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr,
                            weight_decay=config.weight_decay)
    steps = max(1, len(loader))
    sched = _schedule(opt, steps * config.epochs, warmup=steps)
    history_path = run_dir / "history.csv"
    history: list[dict[str, Any]] = []
    best_dice, best_epoch, best_state = -1.0, 0, None
    started = time.perf_counter()
    seen = 0
    va_t = torch.from_numpy((va_y > 0.5).astype(np.float32))[:, None]
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        total, n = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", unit="batch",
                   disable=not progress, leave=False)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.item()) * len(x)
            n += len(x)
            bar.set_postfix(loss=f"{total / n:.4f}")
        seconds = time.perf_counter() - t0
        seen += n
        probs = _predict(model, va_x, mean, std, device)
        val_loss = float(loss_fn(torch.logit(torch.from_numpy(probs)[:, None].clamp(1e-6,
                                                                          1 - 1e-6)), va_t))
        pred = probs >= 0.5
        truth = va_y > 0.5
        inter = (pred & truth).sum(axis=(1, 2))
        denom = pred.sum(axis=(1, 2)) + truth.sum(axis=(1, 2))
        val_dice = float(np.mean(np.where(denom > 0, 2 * inter / np.maximum(denom, 1), 1.0)))
        better = val_dice > best_dice
        if better:
            best_dice, best_epoch = val_dice, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            save_seg_run(run_dir, model, SegModelInfo(  # usable if training is interrupted
                architecture=config.model,  # type: ignore[arg-type]
                architecture_args=args, image_size=size, mean=mean, std=std,
                training={"data": str(config.data), "best_epoch": epoch,
                          "best_val_dice_at_input_size": round(val_dice, 5),
                          "complete": False}))
        row = {"epoch": epoch, "train_loss": round(total / max(n, 1), 5),
               "val_loss": round(val_loss, 5), "val_dice": round(val_dice, 5),
               "lr": f"{opt.param_groups[0]['lr']:.3g}", "seconds": round(seconds, 1),
               "train_images_per_s": round(n / max(seconds, 1e-9), 1), "best": int(better)}
        history.append(row)
        with history_path.open("a" if epoch > 1 else "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
            if epoch == 1:
                w.writeheader()
            w.writerow(row)
        logger.info("epoch %d/%d: loss %.4f, validation Dice %.4f%s (%.0f s)", epoch,
                    config.epochs, row["train_loss"], val_dice, " (best)" if better else "",
                    seconds)
        if epoch - best_epoch >= config.patience:
            logger.info("no better validation Dice for %d epochs; stopping", config.patience)
            break
    wall = time.perf_counter() - started
    assert best_state is not None
    model.load_state_dict(best_state)
    trained = {"epochs_run": epoch, "best_epoch": best_epoch,
               "best_val_dice_at_input_size": round(best_dice, 5),
               "device": str(device), "torch_threads": torch.get_num_threads(),
               "wall_seconds": round(wall, 1),
               "train_images_per_s": round(seen / max(wall, 1e-9), 2)}
    validation = _finish(run_dir, config, model, train_pairs, val_pairs, va_x, va_full,
                         history, trained, device)
    return SegTrainResult(run_dir, best_epoch, epoch, best_dice, validation, wall,
                          seen / max(wall, 1e-9))


def _finish(run_dir: Path, config: SegTrainConfig, model: torch.nn.Module,
            train_pairs: Sequence[MaskPair], val_pairs: Sequence[MaskPair],
            va_x: npt.NDArray[np.float32], va_full: Sequence[npt.NDArray[np.bool_]],
            history: Sequence[dict[str, Any]], trained: dict[str, Any],
            device: torch.device) -> dict[str, Any]:
    """Score the best weights at full resolution; write model.json, scores, curve, card."""
    from radiolens import __version__
    from radiolens.evaluate.plots import plot_learning_curve

    mean, std = 0.5, 0.25
    probs = _predict(model, va_x, mean, std, device)
    scored = []
    for pair, prob, truth in zip(val_pairs, probs, va_full, strict=True):
        full = clean_mask(resize_map(prob, truth.shape) >= 0.5)
        scored.append((pair.image.name, full, truth))
    scores = score_masks(scored)
    validation = scores.summary(seed=config.seed)
    validation["resolution"] = "each image's own size, after post-processing"
    with (run_dir / "val_scores.csv").open("w", newline="") as fh:
        out_csv = csv.writer(fh)
        out_csv.writerow(["image", "dice", "iou", "hd95_px"])
        for row_ in zip(scores.names, scores.dice, scores.iou, scores.hd95, strict=True):
            out_csv.writerow([row_[0], f"{row_[1]:.5f}", f"{row_[2]:.5f}", f"{row_[3]:.2f}"])
    info = SegModelInfo(
        radiolens_version=__version__, architecture=config.model,  # type: ignore[arg-type]
        architecture_args=default_args(config.model), image_size=config.image_size,
        mean=mean, std=std,
        training={"data": str(config.data), "where": config.where,
                  "train_pairs": len(train_pairs), "val_pairs": len(val_pairs),
                  "train_patients": len({p.patient_id for p in train_pairs}),
                  "val_patients": len({p.patient_id for p in val_pairs}),
                  **trained, "config": config.model_dump()},
        validation=validation, created=datetime.now(UTC).replace(microsecond=0).isoformat())
    save_seg_run(run_dir, model, info)
    plot_learning_curve(history, run_dir / "learning_curve.png", metric="val_dice",
                        metric_label="validation Dice")
    write_seg_card(run_dir, info)
    return validation


def finish_seg_run(run_dir: str | os.PathLike[str], *, progress: bool = False,
                   note: str = "") -> dict[str, Any]:
    """Complete a run that was stopped before its last epoch: the best weights saved so
    far are scored at full resolution and ``model.json``, the scores, the learning curve
    and the card are written as a finished run would write them.

    Raises:
        CheckpointError: the folder holds no weights from :func:`train_seg`.
    """
    from radiolens.devices import resolve_device
    from radiolens.segment.run import load_seg_run

    folder = Path(run_dir)
    config = SegTrainConfig(**yaml.safe_load((folder / "config.yaml").read_text()))
    model, _ = load_seg_run(folder)
    with (folder / "history.csv").open(newline="") as fh:
        history = list(csv.DictReader(fh))
    pairs = read_mask_table(config.data, config.images_root, config.where)
    train_pairs, val_pairs = split_pairs(pairs, config.val_fraction, config.seed)
    if config.limit:
        train_pairs = train_pairs[:config.limit]
    va_x, _, va_full, _ = _load(val_pairs, config.image_size, "reading validation pairs",
                                progress)
    best = max(history, key=lambda r: float(r["val_dice"]))
    seconds = sum(float(r["seconds"]) for r in history)
    trained = {"epochs_run": len(history), "best_epoch": int(best["epoch"]),
               "best_val_dice_at_input_size": float(best["val_dice"]),
               "device": "cpu", "torch_threads": torch.get_num_threads(),
               "wall_seconds": round(seconds, 1),
               "train_images_per_s": round(len(train_pairs) * len(history)
                                           / max(seconds, 1e-9), 2),
               "stopped": note or f"stopped after {len(history)} of {config.epochs} epochs"}
    device = resolve_device("cpu")
    return _finish(folder, config, model, train_pairs, val_pairs, va_x, va_full, history,
                   trained, device)


def load_seg_config(overrides: dict[str, Any]) -> SegTrainConfig:
    """A :class:`SegTrainConfig` from flags, with errors a user can act on."""
    try:
        return SegTrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        parts = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("; ".join(parts)) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `radiolens train-seg`")
