"""DeLong's paired AUROC test and the paired comparison of runs by case id."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radiolens.evaluate import (
    EvaluationError,
    delong_test,
    paired_auroc_tests,
    read_predictions,
)


def _scores(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    a = y + rng.normal(0, 1, n)
    b = 0.5 * y + rng.normal(0, 1, n) + 0.3 * a
    return y, a, b


def test_delong_matches_sklearn_aurocs_and_the_bootstrap_spread() -> None:
    y, a, b = _scores()
    t = delong_test(y, a, b)
    assert t.auroc_a == pytest.approx(roc_auc_score(y, a))
    assert t.difference == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    rng = np.random.default_rng(1)
    diffs = []
    for _ in range(400):
        i = rng.integers(0, y.size, y.size)
        diffs.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    se = (t.ci_high - t.ci_low) / (2 * 1.959964)
    assert se == pytest.approx(float(np.std(diffs)), rel=0.2)
    assert 0.0 <= t.p_value <= 1.0 and t.n == 300


def test_identical_models_and_a_clear_difference() -> None:
    y, a, _ = _scores()
    assert delong_test(y, a, a).p_value == 1.0
    noise = np.random.default_rng(2).normal(0, 1, y.size)
    assert delong_test(y, a, noise).p_value < 1e-6
    with pytest.raises(EvaluationError, match="positive and negative"):
        delong_test(np.ones(4), a[:4], a[:4])


def _write_predictions(path: Path, ids: list[str], y: np.ndarray, p: np.ndarray) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "pneumonia_true", "pneumonia_prob"])
        for cid, yt, pp in zip(ids, y, p, strict=True):
            w.writerow([cid, "" if np.isnan(yt) else int(yt), f"{pp:.6f}"])
    return path


def test_runs_are_paired_on_the_cases_both_scored(tmp_path: Path) -> None:
    y, a, b = _scores(100)
    y[0] = np.nan
    ids = [f"c{i}" for i in range(100)]
    ra = read_predictions(_write_predictions(tmp_path / "a.csv", ids, y, a))
    # run b scored the cases in another order and missed ten of them
    order = list(range(99, 9, -1))
    rb = read_predictions(_write_predictions(tmp_path / "b.csv", [ids[i] for i in order],
                                             y[order], b[order]))
    [row] = paired_auroc_tests([("a", ra), ("b", rb)])
    assert row["n"] == 90 and row["reference"] == "a" and row["run"] == "b"
    keep = np.arange(10, 100)
    assert row["auroc_reference"] == pytest.approx(roc_auc_score(y[keep], a[keep]), abs=1e-5)
    assert row["auroc_run"] == pytest.approx(roc_auc_score(y[keep], b[keep]), abs=1e-5)
    assert row["difference"] == pytest.approx(row["auroc_run"] - row["auroc_reference"])
