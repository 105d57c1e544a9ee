"""Resumable training state without pickle.

Tensors (model weights, optimizer moments) go to ``state.safetensors``; everything else
(epoch, best score, optimizer hyper-parameters, scheduler counters, RNG seeds) goes to
``state.json``. Reading it back never unpickles anything.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from radiolens.errors import CheckpointError

__all__ = ["TrainingState", "load_training_state", "save_training_state"]

STATE_VERSION = 1


@dataclass
class TrainingState:
    """What ``--resume`` needs besides the weights."""

    epoch: int = 0  # epochs completed
    best_score: float = float("-inf")
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in sd["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_training_state(folder: str | Path, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
                        state: TrainingState, averaged: torch.nn.Module | None = None) -> None:
    """Write the state to ``folder`` atomically (a crash leaves the previous state intact).

    ``averaged``: the moving average of the weights (``--ema``), kept beside them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    if averaged is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous()
                        for k, v in averaged.state_dict().items()})
    opt_tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    meta = {
        "version": STATE_VERSION,
        "epoch": state.epoch,
        "best_score": state.best_score if math.isfinite(state.best_score) else None,
        "best_epoch": state.best_epoch,
        "epochs_without_improvement": state.epochs_without_improvement, "extra": state.extra,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
    }
    tmp_t, tmp_j = folder / "state.safetensors.tmp", folder / "state.json.tmp"
    save_file(tensors, str(tmp_t))
    tmp_j.write_text(json.dumps(meta, indent=1, default=_jsonable), encoding="utf-8")
    os.replace(tmp_t, folder / "state.safetensors")
    os.replace(tmp_j, folder / "state.json")


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and value != value:
        return None
    raise TypeError(f"cannot store {type(value).__name__} in the training state")


def load_training_state(folder: str | Path, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
                        averaged: torch.nn.Module | None = None) -> TrainingState:
    """Restore what :func:`save_training_state` wrote into the given objects.

    ``averaged`` gets the saved moving average of the weights, or the weights themselves
    when the state has none (a run that did not average before).

    Raises:
        CheckpointError: the folder holds no state, or a state from another model.
    """
    folder = Path(folder)
    tensors_path, meta_path = folder / "state.safetensors", folder / "state.json"
    if not tensors_path.is_file() or not meta_path.is_file():
        raise CheckpointError(f"no training state to resume in {folder}: start without "
                              "--resume, or point -o at the run you want to continue")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        tensors = load_file(str(tensors_path))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"the training state in {folder} is unreadable ({exc}); "
                              "start the run again without --resume") from None
    if meta.get("version") != STATE_VERSION:
        raise CheckpointError(f"training state version {meta.get('version')} in {folder} is "
                              f"not supported (expected {STATE_VERSION})")
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"the training state in {folder} belongs to a different model "
                              f"({len(missing)} missing, {len(unexpected)} unexpected weights); "
                              "use the same --model and labels as the run you resume")
    if averaged is not None:
        ema = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
        averaged.load_state_dict(ema or weights)
    opt_meta = meta["optimizer"]
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    for idx, scalars in opt_meta.get("scalars", {}).items():
        opt_state.setdefault(int(idx), {}).update(scalars)
    optimizer.load_state_dict({"state": opt_state, "param_groups": opt_meta["param_groups"]})
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    best = meta.get("best_score")
    return TrainingState(epoch=int(meta["epoch"]),
                         best_score=float("-inf") if best is None else float(best),
                         best_epoch=int(meta.get("best_epoch", 0)),
                         epochs_without_improvement=int(meta.get("epochs_without_improvement", 0)),
                         extra=meta.get("extra", {}))


def completed_epochs(folder: str | Path) -> int | None:
    """Epochs a saved training state has completed, or None when there is none to read."""
    try:
        meta = json.loads((Path(folder) / "state.json").read_text(encoding="utf-8"))
        return int(meta["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
