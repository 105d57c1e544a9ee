"""Training: configuration, the loop, resumable state. Needs the ``train`` extra."""

from __future__ import annotations

from radiolens.train.config import TrainConfig, load_train_config
from radiolens.train.loop import DEFAULT_URGENCY, TrainResult, resolve_device, train

__all__ = ["DEFAULT_URGENCY", "TrainConfig", "TrainResult", "load_train_config",
           "resolve_device", "train"]
