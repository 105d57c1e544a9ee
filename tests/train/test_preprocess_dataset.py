"""Preprocessing, the in-memory dataset and the masked loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from radiolens.data.dataset import masked_bce_loss, positive_weights
from radiolens.data.preprocess import normalize, preprocess, resize_square


def test_preprocess_shape_and_normalisation() -> None:
    img = np.full((300, 200), 0.5, dtype=np.float32)
    x = preprocess(img, 64, mean=0.5, std=0.25)
    assert x.shape == (1, 64, 64) and x.dtype == np.float32
    assert np.allclose(x, 0.0, atol=1e-5)
    x3 = preprocess(np.ones((10, 10)), 8, mean=[0.485, 0.456, 0.406],
                    std=[0.229, 0.224, 0.225], channels=3)
    assert x3.shape == (3, 8, 8)
    assert math.isclose(float(x3[0, 0, 0]), (1 - 0.485) / 0.229, rel_tol=1e-5)


def test_resize_keeps_range_and_rejects_colour() -> None:
    rng = np.random.default_rng(0)
    out = resize_square(rng.random((50, 70)), 32)
    assert out.shape == (32, 32) and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="2-D"):
        resize_square(np.zeros((4, 4, 3)), 8)
    with pytest.raises(ValueError, match="mean/std"):
        normalize(np.zeros((4, 4)), [0.5, 0.5], 0.25, channels=3)


def test_masked_loss_ignores_missing_labels() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    full = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    missing = torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]])
    loss_missing = masked_bce_loss(logits, missing)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([2.0, 3.0]), torch.tensor([1.0, 1.0]))
    assert torch.isclose(loss_missing, expected)
    assert not torch.isclose(masked_bce_loss(logits, full), loss_missing)
    # A missing label must not be pulled towards 0: its gradient is zero.
    logits.requires_grad_(True)
    masked_bce_loss(logits, missing).backward()
    assert logits.grad is not None
    assert logits.grad[0, 1] == 0 and logits.grad[1, 0] == 0


def test_positive_weights() -> None:
    y = np.array([[1, 0], [0, 0], [0, np.nan], [0, 0]], dtype=np.float32)
    w = positive_weights(y)
    assert w.tolist() == pytest.approx([3.0, 1.0])
