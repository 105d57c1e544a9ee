"""Shared fixtures for the model tests: small metadata objects and tiny inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from radiolens.models import ModelInfo, Preprocessing


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture
def make_info() -> Callable[..., ModelInfo]:
    """Return a factory for a valid ModelInfo at 64 px (override any field by keyword)."""

    def make(architecture: str = "small-vgg", labels: tuple[str, ...] = ("Effusion", "Mass"),
             **fields: Any) -> ModelInfo:
        values: dict[str, Any] = {
            "architecture": architecture,
            "architecture_args": {"in_channels": 1, "dropout": 0.0},
            "task": "multilabel",
            "labels": list(labels),
            "preprocessing": Preprocessing(image_size=64, mean=0.5, std=0.25),
            "thresholds": dict.fromkeys(labels, 0.5),
            "threshold_method": "default 0.5",
            "training": {"epochs": 1, "seed": 0, "n_train": 10},
            "validation": {"auroc": {label: 0.5 for label in labels}},
        }
        values.update(fields)
        return ModelInfo(**values)

    return make
