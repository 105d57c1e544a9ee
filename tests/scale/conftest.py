"""Fixtures for the archive tests: a few tiny PNGs (one broken) and a shared ONNX cache."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ONNX export cache for the session, in the environment so that worker processes
    and Ray workers (which inherit it) find the export the first load made."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    before = os.environ.get("RADIOLENS_CACHE")
    os.environ["RADIOLENS_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("RADIOLENS_CACHE", None)
    else:
        os.environ["RADIOLENS_CACHE"] = before


def make_images(folder: Path, n: int = 7, seed: int = 0) -> Path:
    """``n`` small greyscale PNGs of different sizes and a corrupt ``broken.png``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (48 + 4 * i, 64 - 2 * i)
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(folder / f"x{i:02d}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a PNG")
    return folder


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return make_images(tmp_path / "images")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def scores(path: Path) -> dict[str, tuple[str, str, str]]:
    """path -> (probability, call, error), the columns every way of scoring must agree on."""
    return {r["path"]: (r["pneumonia_prob"], r["pneumonia_call"], r["error"])
            for r in read_rows(path)}
