"""evaluate_predictions, metrics.json and the import rule (no torch)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from radiolens.errors import ConfigError, InputFormatError
from radiolens.evaluate import (
    METRICS_VERSION,
    EvaluationError,
    age_band,
    auprc,
    auroc,
    confusion_at,
    data_fingerprint,
    evaluate_predictions,
    read_metrics_json,
    write_metrics_json,
)

from .synthetic import Predictions

LABEL_KEYS = {
    "n", "n_positive", "n_missing", "prevalence", "auroc", "auroc_ci", "auprc", "auprc_ci",
    "threshold", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "confusion",
    "calibration", "subgroups",
}


def _walk(obj: Any) -> None:
    """Fail on anything that is not a plain JSON type (numpy scalars, NaN, tuples)."""
    if isinstance(obj, dict):
        assert all(isinstance(k, str) for k in obj)
        for v in obj.values():
            _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v)
    else:
        assert obj is None or type(obj) in (str, int, float, bool), type(obj)
        assert not (isinstance(obj, float) and not math.isfinite(obj))


def test_layout_and_plain_json_types(metrics: dict[str, Any], preds: Predictions) -> None:
    _walk(metrics)
    assert set(metrics) == {"data", "settings", "labels", "macro"}
    assert list(metrics["labels"]) == preds.labels
    for rec in metrics["labels"].values():
        assert set(rec) == LABEL_KEYS
        assert set(rec["confusion"]) == {"tp", "fp", "tn", "fn"}
        assert {"ece", "brier", "curve"} <= set(rec["calibration"])
        lo, hi = rec["auroc_ci"]
        assert lo <= rec["auroc"] <= hi
    assert metrics["settings"]["thresholds_chosen_on"] == "validation split"
    assert metrics["settings"]["age_bands"] == ["0-17", "18-39", "40-59", "60-79", "80+"]


def test_values_match_the_metric_functions(metrics: dict[str, Any], preds: Predictions) -> None:
    for j, name in enumerate(preds.labels):
        rec = metrics["labels"][name]
        y, p = preds.y_true[:, j], preds.y_prob[:, j]
        conf = confusion_at(y, p, preds.thresholds[name])
        assert rec["threshold"] == preds.thresholds[name]
        assert rec["auroc"] == pytest.approx(auroc(y, p))
        assert rec["auprc"] == pytest.approx(auprc(y, p))
        assert rec["sensitivity"] == pytest.approx(conf.sensitivity)
        assert rec["confusion"] == {"tp": conf.tp, "fp": conf.fp, "tn": conf.tn, "fn": conf.fn}
        assert rec["n"] == int(np.sum(~np.isnan(y)))
        assert rec["n"] + rec["n_missing"] == len(y)
        assert rec["prevalence"] == pytest.approx(np.nanmean(y))
    effusion = metrics["labels"]["Effusion"]
    assert effusion["n_missing"] > 0  # the fixture blanks ~10 % of Effusion labels
    assert metrics["macro"]["auroc"] == pytest.approx(
        np.mean([metrics["labels"][n]["auroc"] for n in preds.labels]))
    assert metrics["macro"]["n_labels_with_auroc"] == 3


def test_subgroups(metrics: dict[str, Any], preds: Predictions) -> None:
    rec = metrics["labels"]["Effusion"]
    subgroups = rec["subgroups"]
    assert set(subgroups) == {"sex", "age_band", "view"}
    assert list(subgroups["sex"]) == ["F", "M"]  # unknown sex (None) is left out
    assert list(subgroups["age_band"]) == ["0-17", "18-39", "40-59", "60-79", "80+"]
    y, p = preds.y_true[:, 0], preds.y_prob[:, 0]
    sex = preds.metadata["sex"]
    known = np.array([s is not None for s in sex])
    assert sum(g["n"] for g in subgroups["sex"].values()) == int(np.sum(~np.isnan(y[known])))
    assert sum(g["n"] for g in subgroups["view"].values()) == rec["n"]
    female = sex == "F"
    group = subgroups["sex"]["F"]
    assert group["auroc"] == pytest.approx(auroc(y[female], p[female]))
    conf = confusion_at(y[female], p[female], 0.5)
    assert group["sensitivity"] == pytest.approx(conf.sensitivity)
    assert group["specificity"] == pytest.approx(conf.specificity)
    bands = np.array([age_band(a) for a in preds.metadata["age"]], dtype=object)
    old = bands == "80+"
    assert subgroups["age_band"]["80+"]["n"] == int(np.sum(~np.isnan(y[old])))


def test_subgroup_with_one_class_has_null_auroc() -> None:
    y = np.array([[1.0], [0.0], [1.0], [0.0], [0.0], [0.0]])
    p = np.array([[0.9], [0.2], [0.7], [0.4], [0.1], [0.3]])
    view = ["PA", "PA", "PA", "PA", "LAT", "LAT"]
    m = evaluate_predictions(y, p, ["Mass"], {"Mass": 0.5}, metadata={"view": view},
                             n_boot=50)
    lat = m["labels"]["Mass"]["subgroups"]["view"]["LAT"]
    assert lat == {"n": 2, "n_positive": 0, "prevalence": 0.0, "auroc": None,
                   "sensitivity": None, "specificity": 1.0}
    assert m["labels"]["Mass"]["subgroups"]["view"]["PA"]["auroc"] == 1.0


def test_label_without_positives_is_null_not_nan() -> None:
    y = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 1.0], [np.nan, 0.0]])
    p = np.array([[0.1, 0.8], [0.6, 0.3], [0.2, 0.7], [0.5, 0.4]])
    m = evaluate_predictions(y, p, ["Hernia", "Mass"], {"Hernia": 0.5, "Mass": 0.5}, n_boot=50)
    hernia = m["labels"]["Hernia"]
    assert hernia["auroc"] is None and hernia["auroc_ci"] == [None, None]
    assert hernia["sensitivity"] is None and hernia["n"] == 3
    assert m["macro"]["auroc"] == m["labels"]["Mass"]["auroc"]
    assert m["macro"]["n_labels_with_auroc"] == 1
    json.dumps(m, allow_nan=False)


def test_missing_threshold_names_the_label_and_suggests() -> None:
    y, p = np.array([[1.0], [0.0]]), np.array([[0.8], [0.3]])
    with pytest.raises(ConfigError, match=r"'Effusion' \(did you mean 'Efusion'\?\).*valid"):
        evaluate_predictions(y, p, ["Effusion"], {"Efusion": 0.5})
    with pytest.raises(ConfigError, match="within"):
        evaluate_predictions(y, p, ["Effusion"], {"Effusion": 2.0})


def test_shape_errors() -> None:
    with pytest.raises(EvaluationError, match="expected"):
        evaluate_predictions(np.zeros((4, 2)), np.zeros((4, 2)), ["A"], {"A": 0.5})
    with pytest.raises(EvaluationError, match="same cases"):
        evaluate_predictions(np.zeros((4, 1)), np.zeros((3, 1)), ["A"], {"A": 0.5})
    with pytest.raises(EvaluationError, match="one value per case"):
        evaluate_predictions(np.zeros((4, 1)), np.zeros((4, 1)), ["A"], {"A": 0.5},
                             metadata={"sex": ["F"]})


def test_fingerprint_ignores_case_order_but_not_content(preds: Predictions) -> None:
    fp = data_fingerprint(preds.y_true, preds.labels, preds.case_ids)
    perm = np.random.default_rng(0).permutation(len(preds.case_ids))
    shuffled = data_fingerprint(preds.y_true[perm], preds.labels,
                                [preds.case_ids[i] for i in perm])
    assert shuffled == fp
    other_ids = data_fingerprint(preds.y_true, preds.labels, [*preds.case_ids[:-1], "x"])
    assert other_ids["case_ids_sha256"] != fp["case_ids_sha256"]
    relabelled = preds.y_true.copy()
    relabelled[0, 1] = 1 - relabelled[0, 1]
    assert data_fingerprint(relabelled, preds.labels, preds.case_ids)["targets_sha256"] != \
        fp["targets_sha256"]
    assert data_fingerprint(preds.y_true, preds.labels)["case_ids_sha256"] is None


def test_metrics_json_round_trip(metrics: dict[str, Any], tmp_path: Path) -> None:
    config = {"model": "densenet121", "out": tmp_path, "lr": 1e-4, "split": ("val", "test")}
    path = write_metrics_json(tmp_path, metrics, config)
    assert path == tmp_path / "metrics.json"
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["version"] == METRICS_VERSION
    assert doc["config"] == {"model": "densenet121", "out": str(tmp_path), "lr": 1e-4,
                             "split": ["val", "test"]}
    assert doc["labels"] == metrics["labels"]
    assert doc["data"] == metrics["data"]
    assert read_metrics_json(tmp_path)["macro"] == metrics["macro"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_read_metrics_json_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="no such file"):
        read_metrics_json(tmp_path / "missing.json")
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"version": METRICS_VERSION + 1}), encoding="utf-8")
    with pytest.raises(InputFormatError, match="upgrade"):
        read_metrics_json(newer)
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(InputFormatError, match="not valid JSON"):
        read_metrics_json(tmp_path / "bad.json")


def test_import_needs_neither_torch_nor_matplotlib(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import radiolens.evaluate as ev\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time'\n"
        f"ev.plot_confusion({{'tp': 1, 'fp': 2, 'tn': 3, 'fn': 4}}, {str(tmp_path / 'c.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot (global backend) used'\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c.png").stat().st_size > 0
