"""The input gate: implausible images get a reason, a plausible radiograph passes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from radiolens.imaging import GateLimits, assess_image, assess_xray, read_image

from .conftest import make_dicom_dataset, save

Factory = Callable[..., Path]


def synthetic_radiograph(height: int = 512, width: int = 448, seed: int = 0) -> np.ndarray:
    """A chest-like [0, 1] image: dark lungs in a brighter body, bright spine, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    body = 0.55 + 0.1 * np.cos(np.pi * (x - 0.5))
    lungs = np.exp(-(((x - 0.3) / 0.12) ** 2 + ((y - 0.45) / 0.25) ** 2)) + np.exp(
        -(((x - 0.7) / 0.12) ** 2 + ((y - 0.45) / 0.25) ** 2))
    spine = np.exp(-(((x - 0.5) / 0.04) ** 2))
    img = body - 0.4 * lungs + 0.3 * spine + rng.normal(0, 0.02, (height, width))
    return np.clip(img, 0, 1).astype(np.float32)


def test_a_synthetic_radiograph_passes() -> None:
    pixels = synthetic_radiograph()
    assert assess_image(pixels, {}) is None
    assert assess_image(pixels, {"BitsStored": 12, "stored_range": (3, 4011)}) is None
    assert assess_image((pixels * 4095).astype(np.uint16), {"BitsStored": 12}) is None


def test_blank_image() -> None:
    assert "blank" in (assess_image(np.zeros((512, 512), np.float32), {}) or "")
    almost = np.full((512, 512), 0.5, np.float32)
    almost[10, 10] = 1.0  # one hot pixel does not make an image
    assert "blank" in (assess_image(almost, {}) or "")


@pytest.mark.parametrize(("shape", "needle"), [
    ((1, 50176), "50176 x 1 pixels (width x height)"),
    ((50176, 1), "1 x 50176 pixels"),
    ((40, 40), "at least 64"),
    ((200, 1200), "aspect ratio of 6.0:1"),
])
def test_strips_and_tiny_images(shape: tuple[int, int], needle: str) -> None:
    pixels = np.random.default_rng(0).random(shape, dtype=np.float32)
    reason = assess_image(pixels, {})
    assert reason is not None and needle in reason


def test_eight_bit_data_labelled_sixteen_bit() -> None:
    pixels = synthetic_radiograph()
    reason = assess_image(pixels, {"BitsStored": 16, "stored_range": (0, 255)})
    assert reason is not None and "8-bit data labelled" in reason
    raw = (pixels * 255).astype(np.uint16)  # stored values, 16-bit dtype, 8-bit content
    assert "16-bit image" in (assess_image(raw, {"BitsStored": 16}) or "")
    assert assess_image(raw.astype(np.uint8), {"BitsStored": 8}) is None


def test_limits_are_a_dataclass() -> None:
    pixels = synthetic_radiograph(300, 300)
    assert assess_image(pixels, {}, GateLimits(min_side=512)) is not None
    assert assess_image(pixels, {}, GateLimits()) is None


def test_through_read_image(tmp_path: Path, png_file: Factory) -> None:
    good = (synthetic_radiograph() * 4095).astype(np.uint16)
    path = save(make_dicom_dataset(good, bits_stored=12), tmp_path / "good.dcm")
    assert assess_xray(read_image(path)) is None
    relabelled = (synthetic_radiograph() * 255).astype(np.uint16)
    bad = save(make_dicom_dataset(relabelled, bits_stored=16), tmp_path / "relabelled.dcm")
    assert "8-bit data" in (assess_xray(read_image(bad)) or "")
    blank = png_file("blank.png", np.full((256, 256), 128, np.uint8))
    assert "blank" in (assess_xray(read_image(blank)) or "")
