"""PNG plots: written, valid, one set per label, and safe file names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from radiolens.evaluate import PLOT_KINDS, EvaluationError, evaluate_predictions, plot_evaluation
from radiolens.evaluate.plots import _slug, plot_pr, plot_roc

from .synthetic import Predictions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE)


def test_plots_are_written_as_valid_pngs(preds: Predictions, metrics: dict[str, Any],
                                         tmp_path: Path) -> None:
    labels = preds.labels[:2]
    paths = plot_evaluation(preds.y_true[:, :2], preds.y_prob[:, :2], labels, metrics,
                            tmp_path / "plots", dpi=50)
    assert list(paths) == labels
    for name in labels:
        assert tuple(paths[name]) == PLOT_KINDS
        for path in paths[name].values():
            assert path.parent == tmp_path / "plots"
            assert path.stat().st_size > 0 and _is_png(path)
    assert paths["No Finding"]["roc"].name == "roc_No_Finding.png"


def test_label_without_positives_gets_no_roc_or_pr(tmp_path: Path) -> None:
    y = np.array([[0.0], [0.0], [0.0], [np.nan]])
    p = np.array([[0.1], [0.6], [0.2], [0.9]])
    m = evaluate_predictions(y, p, ["Hernia"], {"Hernia": 0.5}, n_boot=20)
    paths = plot_evaluation(y, p, ["Hernia"], m, tmp_path, dpi=40)
    assert set(paths["Hernia"]) == {"reliability", "confusion"}
    assert all(_is_png(path) for path in paths["Hernia"].values())
    with pytest.raises(EvaluationError, match="both classes"):
        plot_roc(y[:, 0], p[:, 0], tmp_path / "roc.png")
    with pytest.raises(EvaluationError, match="positive"):
        plot_pr(y[:, 0], p[:, 0], tmp_path / "pr.png")


def test_file_names_are_safe_and_distinct() -> None:
    used: set[str] = set()
    names = [_slug(n, used) for n in ("../No Finding", "No/Finding", "no_finding", "<>")]
    assert names == ["No_Finding", "No_Finding_2", "no_finding_3", "label"]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", n) and not n.startswith(".") for n in names)


def test_learning_curve_from_history_rows(tmp_path: Path) -> None:
    from radiolens.evaluate import plot_learning_curve

    rows = [{"epoch": "1", "train_loss": "0.7", "val_loss": "0.6", "val_auroc": "nan"},
            {"epoch": "2", "train_loss": "0.5", "val_loss": "0.55", "val_auroc": "0.8"}]
    assert _is_png(plot_learning_curve(rows, tmp_path / "learning_curve.png", dpi=40))


def test_roc_overlay_skips_runs_without_both_classes(preds: Predictions, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from radiolens.evaluate import plot_roc_overlay

    y, p = preds.y_true[:, 0], preds.y_prob[:, 0]
    path = plot_roc_overlay({"a": (y, p), "b": (y, 1 - p), "c": (np.ones(3), p[:3])},
                            tmp_path / "roc.png", label="x", dpi=40)
    assert _is_png(path) and "c: no ROC curve" in caplog.text
