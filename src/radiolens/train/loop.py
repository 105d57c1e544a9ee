"""The training loop: plain PyTorch, AdamW + cosine, early stopping on validation AUROC.

One call, :func:`train`, turns a :class:`~radiolens.train.config.TrainConfig` into a run
directory::

    RUN_DIR/model.safetensors   best weights (by validation AUROC)
    RUN_DIR/model.json          labels, preprocessing, thresholds, validation metrics
    RUN_DIR/config.yaml         the resolved configuration
    RUN_DIR/history.csv         one row per epoch
    RUN_DIR/val_predictions.csv validation probabilities of the best model
    RUN_DIR/state/              optimizer and schedule for ``--resume`` (no pickle)
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import yaml
from torch.utils.data import DataLoader, WeightedRandomSampler

from radiolens.data.dataset import (
    LoadedImages,
    XrayDataset,
    load_images,
    masked_bce_loss,
    positive_weights,
    train_augmentation,
)
from radiolens.devices import cpu_has_native_bf16, resolve_device
from radiolens.errors import CheckpointError, ConfigError, MissingDependencyError
from radiolens.train.config import TrainConfig
from radiolens.train.data import load_training_data
from radiolens.train.state import (
    TrainingState,
    completed_epochs,
    load_training_state,
    save_training_state,
)

__all__ = ["DEFAULT_URGENCY", "LEARNING_CURVE", "TrainResult", "predict_loaded",
           "resolve_device", "train"]

logger = logging.getLogger(__name__)

#: Worklist urgency per finding (higher is read sooner); model.json carries it.
DEFAULT_URGENCY: dict[str, int] = {
    "Pneumothorax": 3, "Pneumonia": 2, "pneumonia": 2, "Consolidation": 2, "Edema": 2,
    "Effusion": 2, "Mass": 2, "covid": 2, "abnormal": 1,
}

#: The learning-curve plot in a run directory (the evaluation report shows it).
LEARNING_CURVE = "learning_curve.png"
#: Progress lines per epoch when stderr is not a terminal (no progress bar).
LOG_LINES_PER_EPOCH = 10

HISTORY_FIELDS = ["epoch", "train_loss", "val_loss", "val_auroc", "lr", "seconds",
                  "train_images_per_s", "best"]


@dataclass
class TrainResult:
    """What a finished :func:`train` call reports."""

    run_dir: Path
    best_epoch: int
    best_auroc: float
    epochs_run: int
    stopped_early: bool
    seconds: float
    train_images_per_s: float
    validation: dict[str, Any]


def _lung_preparation(config: TrainConfig) -> Any:
    """The segmenter and settings when the run crops, dims or penalises by the lungs."""
    if config.crop == "none" and config.outside_lungs == "keep" and config.attention_penalty <= 0:
        return None
    from radiolens.data.dataset import LungPreparation
    from radiolens.segment import LungSegmenter

    segmenter = LungSegmenter(config.lung_model).load()
    logger.info("segmenting the lungs of every image with %s (crop: %s, outside the lungs: "
                "%s)", config.lung_model, config.crop, config.outside_lungs)
    return LungPreparation(segmenter, crop=config.crop == "lungs",
                           dim=config.dim_factor if config.outside_lungs == "dim" else None)


def _init_weights(init: str, labels: Sequence[str]) -> tuple[str, bool]:
    """The weights file for ``--init`` and whether to keep its head: a radiolens run
    directory (or ``builtin:NAME``) with the same labels is fine-tuned head and all."""
    from radiolens.models import read_model_info, resolve_run_dir

    if init.startswith("builtin:") or Path(init).is_dir():
        run = resolve_run_dir(init)
        info = read_model_info(run)
        return str(run / "model.safetensors"), list(info.labels) == list(labels)
    return init, False


class _ActivationMap:
    """The class activation map of a global-pooling network during training, for the
    attention penalty: ``relu(W @ A)`` from the last feature map ``A`` and head ``W``."""

    def __init__(self, model: torch.nn.Module, architecture: str) -> None:
        from radiolens.models import gradcam_target_layer, head_layer

        self.head = model.get_submodule(head_layer(architecture))
        self.features: torch.Tensor | None = None
        layer = model.get_submodule(gradcam_target_layer(architecture))
        layer.register_forward_hook(self._keep)

    def _keep(self, _module: Any, _inp: Any, out: torch.Tensor) -> None:
        self.features = out

    def outside_fraction(self, lung: torch.Tensor) -> torch.Tensor:
        """Mean over the batch and labels of the map's mass outside ``lung`` (N,1,S,S)."""
        if self.features is None:
            raise RuntimeError("no forward pass yet")
        a = torch.relu(self.features.float())
        w = self.head.weight.float()
        cam = torch.relu(torch.einsum("nchw,lc->nlhw", a, w))
        inside = torch.nn.functional.adaptive_avg_pool2d(lung.float(),
                                                         (cam.shape[-2], cam.shape[-1]))
        total = cam.sum(dim=(2, 3)) + 1e-6
        return ((cam * (1.0 - inside)).sum(dim=(2, 3)) / total).mean()


class _WeightAverage:
    """An exponential moving average of a model's weights (``--ema``), kept in a copy.

    The decay ramps up as ``(1 + n) / (10 + n)`` over the first updates (capped at
    ``decay``), so a short fine-tuning run is not dominated by its starting weights.
    Integer buffers (BatchNorm's batch counter) are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        import copy

        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self._pairs = list(zip(self.model.state_dict().values(),
                               model.state_dict().values(), strict=True))

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for mine, theirs in self._pairs:
            if mine.is_floating_point():
                mine.lerp_(theirs.detach(), 1.0 - decay)
            else:
                mine.copy_(theirs)


def _mean_auroc(y: npt.NDArray[np.float32], p: npt.NDArray[np.float32]) -> tuple[float,
                                                                                 list[float]]:
    from radiolens.evaluate import auroc

    per = [auroc(y[:, j], p[:, j]) for j in range(y.shape[1])]
    finite = [a for a in per if a is not None and math.isfinite(a)]
    return (float(np.mean(finite)) if finite else float("nan")), per


def predict_loaded(model: torch.nn.Module, dataset: XrayDataset, device: torch.device,
                   batch_size: int = 64, channels_last: bool = False,
                   amp: bool = False) -> tuple[npt.NDArray[np.float32], float]:
    """Sigmoid probabilities ``(N, L)`` for a dataset, and the mean masked loss."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    model.eval()
    probs: list[npt.NDArray[np.float32]] = []
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in loader:
            x = batch["image"].to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x).float()
            y = batch["label"].to(device)
            total += float(masked_bce_loss(logits, y)) * len(x)
            count += len(x)
            probs.append(torch.sigmoid(logits).cpu().numpy().astype(np.float32))
    return np.concatenate(probs), total / max(count, 1)


def _schedule(optimizer: torch.optim.Optimizer, total_steps: int,
              warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _summary(items: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    y = np.stack([np.asarray(it["label"], dtype=np.float32) for it in items])
    return {
        "images": len(items),
        "patients": len({it.get("patient_id") for it in items}),
        "positives": {n: int(np.nansum(y[:, j] == 1)) for j, n in enumerate(labels)},
        "negatives": {n: int(np.nansum(y[:, j] == 0)) for j, n in enumerate(labels)},
        "missing": {n: int(np.isnan(y[:, j]).sum()) for j, n in enumerate(labels)},
    }


def _append_history(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})


def _write_predictions(path: Path, items: Sequence[dict[str, Any]], labels: Sequence[str],
                       y: npt.NDArray[np.float32], p: npt.NDArray[np.float32]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "patient_id", *[f"{n}_true" for n in labels],
                         *[f"{n}_prob" for n in labels]])
        for it, yt, pp in zip(items, y, p, strict=True):
            writer.writerow([it.get("id", it["image"]), it.get("patient_id", ""),
                             *["" if math.isnan(v) else int(v) for v in yt],
                             *[f"{v:.6f}" for v in pp]])


def _check_not_complete(run_dir: Path, epochs: int) -> None:
    """Refuse to resume a run that has already trained ``epochs`` epochs."""
    done = completed_epochs(run_dir / "state")
    if done is not None and done >= epochs:
        raise ConfigError(f"{run_dir} is already complete ({done} of {epochs} epochs); raise "
                          "--epochs to train more, or evaluate it with `radiolens evaluate "
                          f"--checkpoint {run_dir}`")


def _log_every(steps_per_epoch: int) -> int:
    """Batches between progress lines when there is no progress bar."""
    return max(1, math.ceil(steps_per_epoch / LOG_LINES_PER_EPOCH))


def _plot_history(history_path: Path, out: Path) -> None:
    """Write the learning curve (loss and validation AUROC per epoch) from history.csv."""
    from radiolens.evaluate import plot_learning_curve

    with history_path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows:
        plot_learning_curve(rows, out)
        logger.info("wrote %s", out)


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MissingDependencyError("tensorboard", "tensorboard") from None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def train(config: TrainConfig, *, resume: bool = False, progress: bool = False) -> TrainResult:
    """Train a model as ``config`` says and write the run directory.

    Args:
        config: the resolved configuration (``radiolens train`` builds it from flags/YAML).
        resume: continue from ``RUN_DIR/state`` (same data, model and labels).
        progress: show progress bars (the CLI turns them on when stderr is a terminal).

    Returns:
        A :class:`TrainResult`; the run directory holds the best model.

    Raises:
        ConfigError, DatasetError, CheckpointError: bad settings, data or run directory.

    Under ``torchrun`` it trains with distributed data parallel
    (:mod:`radiolens.train.distributed`).
    """
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % (2**32))
    device = resolve_device(config.device)
    from radiolens.train.distributed import join_distributed, leave_distributed

    dist = join_distributed(device)
    if dist.active and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    try:
        return _train(config, resume, progress, started, device, dist)
    finally:
        leave_distributed(dist)


def _train(config: TrainConfig, resume: bool, progress: bool, started: float,
           device: torch.device, dist: Any) -> TrainResult:
    from tqdm.auto import tqdm

    from radiolens.evaluate import choose_threshold, evaluate_predictions
    from radiolens.models import (
        ModelInfo,
        Preprocessing,
        build_model,
        freeze_backbone,
        load_pretrained,
        save_run,
    )
    from radiolens.train.distributed import wrap_model

    run_dir = Path(config.output).expanduser()
    if run_dir.exists() and not resume and (run_dir / "history.csv").exists():
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to continue "
                          "it, or choose another -o")
    if resume:
        _check_not_complete(run_dir, config.epochs)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(
            yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")

    train_dl, val_dl = load_training_data(config)
    labels = list(train_dl.labels)
    size = config.image_size
    logger.info("training on %d images (%d patients), validating on %d (%d patients); "
                "labels: %s", len(train_dl), len({i["patient_id"] for i in train_dl.items}),
                len(val_dl), len({i["patient_id"] for i in val_dl.items}), ", ".join(labels))
    lungs = _lung_preparation(config)
    train_imgs: LoadedImages = load_images(train_dl.items, size, progress=progress,
                                           skip_unreadable=config.skip_unreadable,
                                           desc="reading training images", lungs=lungs)
    val_imgs = load_images(val_dl.items, size, progress=progress,
                           skip_unreadable=config.skip_unreadable,
                           desc="reading validation images", lungs=lungs)
    if lungs is not None:
        val_imgs.masks = None
    if config.attention_penalty <= 0:
        train_imgs.masks = None
    augment = (train_augmentation(size, config.seed, shortcuts=config.shortcut_augment)
               if config.augment else None)
    train_ds = XrayDataset(train_imgs, config.mean, config.std, augment=augment)
    val_ds = XrayDataset(val_imgs, config.mean, config.std)
    if np.all(np.isnan(val_ds.labels)):
        raise ConfigError("the validation split has no labels; raise --val-fraction")

    model = build_model(config.model, n_outputs=len(labels), in_channels=1)
    if config.init:
        init_path, keep_head = _init_weights(config.init, labels)
        report = load_pretrained(model, init_path, fold_to_grey=True, keep_head=keep_head)
        logger.info("initialised from %s: %s", config.init, report)
    if config.freeze_backbone:
        frozen = freeze_backbone(model, config.model)
        logger.info("froze %d backbone parameters", frozen)
    model.to(device)
    use_cuda = device.type == "cuda"
    # bf16 autocast where the hardware computes bf16 (a GPU, or a CPU with AVX-512 BF16 /
    # AMX: 2.5x fp32 there, bench/train_speed.py); elsewhere torch would emulate it, slower.
    amp = config.amp and (use_cuda or (device.type == "cpu" and cpu_has_native_bf16()))
    channels_last = config.channels_last and device.type in ("cuda", "cpu")
    if amp or channels_last:
        logger.info("training with%s bf16 autocast%s", "" if amp else "out",
                    ", channels-last" if channels_last else "")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    # made before any hook or wrapper touches the model, so the copy carries none
    average = _WeightAverage(model, config.ema) if config.ema > 0 else None

    pos_weight = None
    sampler: Any = None
    if config.imbalance == "pos-weight":
        pos_weight = positive_weights(train_ds.labels).to(device)
        logger.info("positive weights: %s", dict(zip(labels, pos_weight.tolist(), strict=True)))
    elif config.imbalance == "sampler":
        first = np.nan_to_num(train_ds.labels[:, 0], nan=0.0)
        n_pos = max(1.0, float(first.sum()))
        n_neg = max(1.0, float(len(first) - first.sum()))
        weights = np.where(first == 1, 0.5 / n_pos, 0.5 / n_neg)
        generator = torch.Generator().manual_seed(config.seed)
        sampler = WeightedRandomSampler(weights.tolist(), num_samples=len(first),
                                        replacement=True, generator=generator)
    workers = 0 if device.type == "cpu" else config.workers
    batch_size = config.batch_size
    if dist.active:  # each process takes its share of every global batch, in one order
        from torch.utils.data.distributed import DistributedSampler

        if sampler is not None:
            raise ConfigError("--imbalance sampler does not work with torchrun; use "
                              "--imbalance pos-weight")
        batch_size = dist.local_batch(config.batch_size)
        sampler = DistributedSampler(train_ds, num_replicas=dist.world, rank=dist.rank,
                                     shuffle=True, seed=config.seed, drop_last=True)
    loader = DataLoader(train_ds, batch_size=batch_size, shuffle=sampler is None,
                        sampler=sampler, num_workers=workers, drop_last=len(train_ds) >
                        config.batch_size, generator=torch.Generator().manual_seed(config.seed),
                        pin_memory=use_cuda, persistent_workers=workers > 0)
    net = wrap_model(model, dist, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(loader))
    scheduler = _schedule(optimizer, steps_per_epoch * config.epochs,
                          int(config.warmup_epochs * steps_per_epoch))

    state = TrainingState()
    state_dir = run_dir / "state"
    if resume:
        state = load_training_state(state_dir, model, optimizer, scheduler,
                                    average.model if average is not None else None)
        if average is not None:
            average.updates = int(state.extra.get("ema_updates", 0))
        logger.info("resuming after epoch %d (best AUROC %.4f at epoch %d)", state.epoch,
                    state.best_score, state.best_epoch)

    preprocessing = Preprocessing(image_size=size, channels=1, mean=config.mean,
                                  std=config.std, crop=config.crop,
                                  outside_lungs=config.outside_lungs,
                                  lung_model=config.lung_model, dim_factor=config.dim_factor)
    attention = (_ActivationMap(model, config.model) if config.attention_penalty > 0
                 else None)
    architecture_args: dict[str, Any] = {}
    writer = _tensorboard(run_dir) if config.tensorboard else None
    history_path = run_dir / "history.csv"
    stopped_early = False
    images_seen, train_seconds = 0, 0.0
    epoch = state.epoch
    every = _log_every(steps_per_epoch)
    while epoch < config.epochs:
        epoch += 1
        model.train()
        if dist.active:
            loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        running, n_batches = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", unit="batch",
                   disable=not progress, leave=False)
        for batch in bar:
            x = batch["image"].to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = batch["label"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = net(x)
            loss = masked_bce_loss(logits, y, pos_weight)
            if attention is not None:
                loss = loss + config.attention_penalty * attention.outside_fraction(
                    batch["lung"].to(device, non_blocking=True))
            if not torch.isfinite(loss):
                raise ConfigError(f"the loss became {loss.item()} at epoch {epoch}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update()
            running += loss.item()
            n_batches += 1
            images_seen += len(x)
            bar.set_postfix(loss=f"{running / n_batches:.4f}")
            if not progress and n_batches % every == 0 and n_batches < steps_per_epoch:
                logger.info("epoch %d/%d: batch %d/%d, loss %.4f", epoch, config.epochs,
                            n_batches, steps_per_epoch, running / n_batches)
        epoch_train_s = time.perf_counter() - t0
        train_seconds += epoch_train_s
        running = dist.mean(running, n_batches) * max(n_batches, 1)  # all processes
        # validation in fp32, as inference runs: the threshold is chosen on these numbers
        judged = average.model if average is not None else model
        probs, val_loss = predict_loaded(judged, val_ds, device, config.batch_size * 2,
                                         channels_last)
        val_auroc, _per_label = _mean_auroc(val_ds.labels, probs)
        improved = math.isfinite(val_auroc) and val_auroc > state.best_score
        if improved or state.best_epoch == 0:
            state.best_score = val_auroc if math.isfinite(val_auroc) else state.best_score
            state.best_epoch = epoch
            state.epochs_without_improvement = 0
            info = ModelInfo(architecture=config.model, architecture_args=architecture_args,
                             task="binary" if len(labels) == 1 else "multilabel",
                             labels=labels, preprocessing=preprocessing)
            if dist.main:
                save_run(run_dir, judged, info)
        else:
            state.epochs_without_improvement += 1
        state.epoch = epoch
        if not dist.main:
            if state.epochs_without_improvement >= config.patience:
                break
            continue
        if average is not None:
            state.extra["ema_updates"] = average.updates
        save_training_state(state_dir, model, optimizer, scheduler, state,
                            average.model if average is not None else None)
        row = {"epoch": epoch, "train_loss": f"{running / max(n_batches, 1):.5f}",
               "val_loss": f"{val_loss:.5f}", "val_auroc": f"{val_auroc:.5f}",
               "lr": f"{scheduler.get_last_lr()[0]:.3e}", "seconds": f"{epoch_train_s:.1f}",
               "train_images_per_s": f"{len(train_ds) / max(epoch_train_s, 1e-9):.1f}",
               "best": int(state.best_epoch == epoch)}
        _append_history(history_path, row)
        if writer is not None:
            writer.add_scalar("loss/train", running / max(n_batches, 1), epoch)
            writer.add_scalar("loss/val", val_loss, epoch)
            writer.add_scalar("auroc/val", val_auroc, epoch)
        logger.info("epoch %d/%d: train loss %.4f, val loss %.4f, val AUROC %.4f%s (%.0f s)",
                    epoch, config.epochs, running / max(n_batches, 1), val_loss, val_auroc,
                    " *best*" if state.best_epoch == epoch else "", epoch_train_s)
        if state.epochs_without_improvement >= config.patience:
            logger.info("no better validation AUROC for %d epochs: stopping early",
                        config.patience)
            stopped_early = True
            break
    if writer is not None:
        writer.close()
    if not dist.main:  # rank 0 writes the final model
        return TrainResult(run_dir=run_dir, best_epoch=state.best_epoch,
                           best_auroc=state.best_score, epochs_run=state.epoch,
                           stopped_early=False, seconds=time.perf_counter() - started,
                           train_images_per_s=0.0, validation={})
    _plot_history(history_path, run_dir / LEARNING_CURVE)

    # Final: the best weights, thresholds and validation metrics into model.json.
    from radiolens.models import load_run

    try:
        best_model, _ = load_run(run_dir, device=device)
    except CheckpointError:
        raise
    probs, _ = predict_loaded(best_model, val_ds, device, config.batch_size * 2)
    y_val = val_ds.labels
    thresholds = {}
    for j, name in enumerate(labels):
        known = ~np.isnan(y_val[:, j])
        yj, pj = y_val[known, j], probs[known, j]
        thresholds[name] = (choose_threshold(yj, pj, config.threshold_method)
                            if len(np.unique(yj)) == 2 else 0.5)
    metadata = {k: [it.get(k, "") for it in val_imgs.items] for k in ("sex", "age", "view")}
    validation = evaluate_predictions(y_val, probs, labels, thresholds, metadata, n_boot=500,
                                      seed=config.seed,
                                      case_ids=[it.get("id", it["image"])
                                                for it in val_imgs.items], split="val")
    validation["settings"]["thresholds_chosen_on"] = (
        f"the validation split of {Path(config.data).name} ({len(val_imgs.items)} images)")
    _write_predictions(run_dir / "val_predictions.csv", val_imgs.items, labels, y_val, probs)
    seconds = time.perf_counter() - started
    speed = images_seen / train_seconds if train_seconds > 0 else 0.0
    training = {
        "data": str(config.data),
        "data_format": config.data_format,
        "where": config.where,
        "train": _summary(train_imgs.items, labels),
        "val": _summary(val_imgs.items, labels),
        "sources": sorted({str(it.get("source", "")) for it in train_imgs.items} - {""}),
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped_early": stopped_early,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "precision": "bf16 autocast" if amp else "fp32",
        "wall_seconds": round(seconds, 1),
        "train_images_per_s": round(speed, 1),
        "init": config.init,
        "config": config.model_dump(mode="json"),
    }
    final = ModelInfo(architecture=config.model, architecture_args=architecture_args,
                      task="binary" if len(labels) == 1 else "multilabel", labels=labels,
                      preprocessing=preprocessing, thresholds=thresholds,
                      threshold_method=f"{config.threshold_method} on the validation split",
                      urgency={n: DEFAULT_URGENCY.get(n, 1) for n in labels},
                      training=training, validation=validation)
    save_run(run_dir, best_model, final, half=config.half)
    logger.info("best epoch %d, validation AUROC %.4f; wrote %s", state.best_epoch,
                state.best_score, run_dir)
    return TrainResult(run_dir=run_dir, best_epoch=state.best_epoch,
                       best_auroc=state.best_score, epochs_run=state.epoch,
                       stopped_early=stopped_early, seconds=seconds,
                       train_images_per_s=speed, validation=validation)
