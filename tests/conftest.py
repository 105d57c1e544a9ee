"""Fixtures shared across test packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random small-vgg pneumonia model (64 px) with a threshold that flags some cases."""
    import torch

    from radiolens.models import ModelInfo, Preprocessing, build_model, save_run

    torch.manual_seed(0)
    model = build_model("small-vgg", 1)
    info = ModelInfo(architecture="small-vgg", task="binary", labels=["pneumonia"],
                     preprocessing=Preprocessing(image_size=64, mean=0.5, std=0.25),
                     thresholds={"pneumonia": 0.0}, urgency={"pneumonia": 2},
                     threshold_method="fixed:0.0 (test model flags everything)")
    out = tmp_path_factory.mktemp("tiny-model")
    save_run(out, model, info)
    return out




@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite worklist in ``tmp_path`` (the worklist tests override this with one
    that also runs on PostgreSQL)."""
    from radiolens.worklist import open_worklist

    eng = open_worklist(tmp_path / "worklist.db")
    yield eng
    eng.dispose()
