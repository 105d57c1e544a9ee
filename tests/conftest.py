"""Fixtures shared across test packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine


@pytest.fixture(scope="session", autouse=True)
def _export_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """ONNX exports made by tests go to a temporary cache, not the user's home."""
    import os

    old = os.environ.get("RADIOLENS_CACHE")
    os.environ["RADIOLENS_CACHE"] = str(tmp_path_factory.mktemp("radiolens-cache"))
    yield
    if old is None:
        os.environ.pop("RADIOLENS_CACHE", None)
    else:
        os.environ["RADIOLENS_CACHE"] = old


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


@pytest.fixture(scope="session")
def synthetic_masks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 synthetic 64-px radiographs with lung masks: ``labels.csv`` with a mask column."""
    from radiolens.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("syn-masks"), n=48, image_size=64,
                                  seed=3, masks=True)


@pytest.fixture(scope="session")
def tiny_seg_model(tmp_path_factory: pytest.TempPathFactory, synthetic_masks: Path) -> Path:
    """A small U-Net trained for a few epochs on :func:`synthetic_masks` (64 px): its masks
    of synthetic radiographs are good, so tests can rely on them."""
    from radiolens.segment.train import SegTrainConfig, train_seg

    out = tmp_path_factory.mktemp("tiny-seg") / "run"
    train_seg(SegTrainConfig(data=str(synthetic_masks), output=str(out), image_size=64,
                             epochs=8, batch_size=8, lr=5e-3, device="cpu"))
    return out


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite worklist in ``tmp_path`` (the worklist tests override this with one
    that also runs on PostgreSQL)."""
    from radiolens.worklist import open_worklist

    eng = open_worklist(tmp_path / "worklist.db")
    yield eng
    eng.dispose()
