"""compare_runs: the side-by-side table and the same-test-data check."""

from __future__ import annotations

import copy
import csv
import logging
from pathlib import Path
from typing import Any

import pytest

from radiolens.evaluate import check_same_data, compare_runs


def test_table_has_labels_macro_and_runs(metrics: dict[str, Any],
                                         caplog: pytest.LogCaptureFixture) -> None:
    other = copy.deepcopy(metrics)
    other["labels"]["Effusion"]["auroc"] = 0.5
    with caplog.at_level(logging.WARNING, logger="radiolens.evaluate"):
        table = compare_runs([("densenet", metrics), ("resnet", other)])
    assert not caplog.records
    lines = table.splitlines()
    assert "densenet" in lines[0] and "resnet" in lines[0]
    assert "AUROC [95% CI]" in lines[1] and "sens" in lines[1] and "spec" in lines[1]
    rows = {line.split(" | ")[0].strip(): line for line in lines[2:] if " | " in line}
    assert set(rows) == {"Effusion", "No Finding", "Pneumothorax", "macro"}
    eff = metrics["labels"]["Effusion"]
    lo, hi = eff["auroc_ci"]
    assert f"{eff['auroc']:.3f} [{lo:.3f}, {hi:.3f}]" in rows["Effusion"]
    assert f"{eff['sensitivity']:.3f}" in rows["Effusion"]
    assert "0.500" in rows["Effusion"].split(" | ")[2]
    assert f"{metrics['macro']['auroc']:.3f}" in rows["macro"]
    assert "note:" not in table
    assert len({len(line) for line in lines if " | " in line and "macro" not in line}) <= 2


def test_missing_label_shows_a_dash(metrics: dict[str, Any]) -> None:
    other = copy.deepcopy(metrics)
    del other["labels"]["Pneumothorax"]
    table = compare_runs([("a", metrics), ("b", other)])
    row = next(line for line in table.splitlines() if line.startswith("Pneumothorax"))
    assert row.split(" | ")[2].split() == ["-", "-", "-"]


def test_different_test_data_warns(metrics: dict[str, Any],
                                   caplog: pytest.LogCaptureFixture) -> None:
    other = copy.deepcopy(metrics)
    other["data"]["case_ids_sha256"] = "0" * 64
    with caplog.at_level(logging.WARNING, logger="radiolens.evaluate"):
        table = compare_runs([("a", metrics), ("b", other)])
    assert "different test data" in caplog.text and "case ids" in caplog.text
    assert table.splitlines()[-1].startswith("note:")

    caplog.clear()
    fewer = copy.deepcopy(metrics)
    fewer["data"]["n_cases"] -= 1
    with caplog.at_level(logging.WARNING, logger="radiolens.evaluate"):
        assert not check_same_data([("a", metrics), ("b", fewer)])
    assert "cases" in caplog.text

    caplog.clear()
    relabelled = copy.deepcopy(metrics)
    relabelled["data"]["targets_sha256"] = "1" * 64
    with caplog.at_level(logging.WARNING, logger="radiolens.evaluate"):
        assert not check_same_data([("a", metrics), ("b", relabelled)])
    assert "ground-truth" in caplog.text


def test_without_fingerprint_or_ids_it_cannot_confirm(metrics: dict[str, Any],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    bare = {k: v for k, v in metrics.items() if k != "data"}
    no_ids = copy.deepcopy(metrics)
    no_ids["data"]["case_ids_sha256"] = None
    with caplog.at_level(logging.WARNING, logger="radiolens.evaluate"):
        assert not check_same_data([("a", metrics), ("b", bare)])
        assert not check_same_data([("a", metrics), ("c", no_ids)])
    assert "no 'data' fingerprint" in caplog.text and "cannot confirm" in caplog.text
    assert check_same_data([("a", metrics), ("a2", copy.deepcopy(metrics))])
    assert compare_runs([]) == "(no runs to compare)"


def _evaluation(folder: Path, y: Any, p: Any) -> Path:
    from radiolens.evaluate import evaluate_predictions, write_metrics_json

    ids = [f"c{i}" for i in range(len(y))]
    metrics = evaluate_predictions(y[:, None], p[:, None], ["pneumonia"], {"pneumonia": 0.5},
                                   n_boot=20, case_ids=ids, split="test")
    folder.mkdir(parents=True)
    write_metrics_json(folder / "metrics.json", metrics)
    with (folder / "predictions.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "pneumonia_true", "pneumonia_prob"])
        w.writerows([cid, int(t), f"{q:.6f}"] for cid, t, q in zip(ids, y, p, strict=True))
    return folder


def test_compare_cli_paired_test_and_output_files(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from radiolens.cli.main import main

    rng = np.random.default_rng(0)
    y = (rng.random(80) < 0.4).astype(float)
    a = _evaluation(tmp_path / "good", y, np.clip(0.5 * y + rng.random(80) * 0.6, 0, 1))
    b = _evaluation(tmp_path / "noise", y, rng.random(80))
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "paired DeLong test" in text and "noise vs good" in text
    rows = list(csv.DictReader((out / "compare.csv").open(encoding="utf-8")))
    assert [r["run"] for r in rows] == ["good", "noise"]
    assert rows[0]["p_value"] == "" and float(rows[1]["p_value"]) < 0.05
    assert float(rows[1]["auroc_difference"]) < 0 and rows[1]["n_paired"] == "80"
    html = (out / "compare.html").read_text(encoding="utf-8")
    assert "Paired test of AUROC differences" in html and "data:image/png;base64," in html
    assert (out / "roc_pneumonia.png").read_bytes().startswith(b"\x89PNG")
