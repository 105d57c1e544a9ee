"""Post-processing, the plausibility check, the lung crop and the scores (no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from radiolens.data.preprocess import lung_view
from radiolens.explain import attention_outside, heat_in_lungs
from radiolens.segment import assess_mask, clean_mask, lung_box
from radiolens.segment.crop import paste_box
from radiolens.segment.metrics import dice, hd95, iou, mean_ci, score_masks


def two_lungs(h: int = 100, w: int = 100) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[20:80, 15:45] = True
    m[20:80, 55:85] = True
    return m


def test_clean_mask_keeps_two_largest_and_fills_holes() -> None:
    m = two_lungs()
    m[40:45, 25:30] = False          # a hole in the right lung
    m[90:92, 90:92] = True           # a speck
    m[2:6, 2:6] = True               # a third, small component
    out = clean_mask(m)
    assert out[42, 27], "hole not filled"
    assert not out[91, 91] and not out[3, 3], "small components kept"
    assert out.sum() == two_lungs().sum()


def test_clean_mask_drops_a_speck_as_second_lung() -> None:
    m = np.zeros((100, 100), bool)
    m[20:80, 15:45] = True
    m[50, 70] = True
    assert clean_mask(m).sum() == 60 * 30


def test_plausible_mask_passes() -> None:
    q = assess_mask(two_lungs())
    assert q.ok, q.reasons
    assert q.lungs == 2 and 0.3 < q.lung_fraction < 0.4


@pytest.mark.parametrize("mask, words", [
    (lambda: np.pad(np.ones((60, 30), bool), ((20, 20), (15, 55))), "one lung"),
    (lambda: np.pad(np.ones((6, 4), bool), ((40, 54), (10, 86))) | np.pad(
        np.ones((6, 4), bool), ((40, 54), (80, 16))), "cover"),
    (lambda: np.pad(two_lungs(100, 100)[:, 15:85], ((0, 0), (0, 130)))[:, :200], "off-centre"),
    (lambda: np.pad(np.ones((20, 30), bool), ((5, 75), (15, 55)))
     | np.pad(np.ones((20, 30), bool), ((75, 5), (55, 15))), "side by side"),
])
def test_implausible_masks_are_flagged(mask, words) -> None:
    q = assess_mask(mask())
    assert not q.ok
    assert any(words in r for r in q.reasons), q.reasons


def test_empty_mask_and_unsure_network() -> None:
    assert assess_mask(np.zeros((10, 10), bool)).reasons == ["no lung found"]
    m = two_lungs()
    unsure = np.where(m, 0.55, 0.45).astype(np.float32)
    q = assess_mask(m, unsure)
    assert not q.ok and "unsure" in q.reasons[0]
    assert assess_mask(m, np.where(m, 0.99, 0.01)).ok


def test_scores() -> None:
    a = two_lungs()
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    b = np.zeros_like(a)
    b[20:80, 15:45] = True
    assert dice(a, b) == pytest.approx(2 * 1800 / 5400)
    assert iou(a, b) == pytest.approx(0.5)
    shifted = np.roll(a, 3, axis=0)
    assert hd95(shifted, a) == pytest.approx(3.0, abs=0.01)
    assert np.isnan(hd95(np.zeros_like(a), a))
    scores = score_masks([("x", a, a), ("y", b, a)])
    summary = scores.summary(n_boot=200)
    assert summary["n"] == 2
    assert summary["dice"]["mean"] == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="differ in shape"):
        score_masks([("z", a, a[:50])])


def test_mean_ci_brackets_the_mean() -> None:
    rng = np.random.default_rng(0)
    v = list(rng.normal(0.9, 0.02, 50))
    lo, hi = mean_ci(v)
    assert lo < float(np.mean(v)) < hi
    assert mean_ci([0.5]) == (None, None)


def test_lung_box_and_view() -> None:
    m = two_lungs()
    box = lung_box(m, margin=0.0)
    assert (box.top, box.bottom, box.left, box.right) == (20, 80, 15, 85)
    assert lung_box(np.zeros_like(m)).shape == (100, 100)
    pixels = np.full((100, 100), 0.8, np.float32)
    view, _, vbox = lung_view(pixels, m, crop=True, dim=0.25, margin=0.0)
    assert view.shape == (60, 70) and vbox == box
    assert view[10, 5] == pytest.approx(0.8)       # inside a lung: kept
    assert view[10, 35] == pytest.approx(0.2)      # between the lungs: dimmed
    full, _, whole = lung_view(pixels, m, crop=False, dim=None)
    assert full.shape == (100, 100) and whole.shape == (100, 100)
    np.testing.assert_array_equal(full, pixels)
    back = paste_box(np.ones(box.shape), box, (100, 100))
    assert back.sum() == 60 * 70 and back[0, 0] == 0


def test_heat_in_lungs() -> None:
    m = two_lungs()
    uniform = np.ones((100, 100))
    assert heat_in_lungs(uniform, m) == pytest.approx(m.mean())
    assert heat_in_lungs(m.astype(float), m) == pytest.approx(1.0)
    assert heat_in_lungs(np.zeros((100, 100)), m) is None
    assert attention_outside(0.2) and not attention_outside(0.9)
    assert not attention_outside(None)
