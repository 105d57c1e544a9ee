"""report.html: self-contained, escaped, with the disclaimer and every section."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

import numpy as np

from radiolens import DISCLAIMER
from radiolens.evaluate import (
    evaluate_predictions,
    plot_evaluation,
    render_html,
    write_html_report,
)

from .synthetic import Predictions

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def test_report_is_self_contained_and_has_the_disclaimer(
        preds: Predictions, metrics: dict[str, Any], tmp_path: Path) -> None:
    plots = plot_evaluation(preds.y_true[:, :1], preds.y_prob[:, :1], preds.labels[:1],
                            metrics, tmp_path / "plots", dpi=40)
    path = write_html_report(tmp_path, metrics, plots)
    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    assert html.escape(DISCLAIMER) in text
    assert not EXTERNAL.search(text)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower() and "<link" not in text.lower()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 4
    assert all(base64.b64decode(b).startswith(b"\x89PNG\r\n\x1a\n") for b in images)
    for name in preds.labels:
        assert html.escape(name) in text
    for heading in ("Summary", "Calibration", "Subgroups", "macro average", "age band"):
        assert heading in text
    assert "validation split" in text


def test_all_text_is_escaped(tmp_path: Path) -> None:
    y = np.array([[1.0], [0.0], [1.0], [0.0]])
    p = np.array([[0.9], [0.2], [0.6], [0.3]])
    name = "Mass<script>alert(1)</script>"
    m = evaluate_predictions(y, p, [name], {name: 0.5}, n_boot=20,
                             metadata={"view": ['"><img src=x>', "PA", "PA", "AP"]})
    text = render_html(m, title="<b>run & co</b>")
    assert "<script>" not in text and "<img src=x>" not in text and "<b>run" not in text
    assert "Mass&lt;script&gt;" in text and "&lt;b&gt;run &amp; co&lt;/b&gt;" in text


def test_missing_or_non_png_plots_are_skipped(metrics: dict[str, Any], tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("not a png", encoding="utf-8")
    plots = {"Effusion": {"roc": fake, "pr": tmp_path / "missing.png"}}
    text = render_html(metrics, plots)
    assert "data:image/png" not in text


def _tiny_metrics(split: str | None, **metadata: Any) -> dict[str, Any]:
    y = np.array([[1.0], [0.0], [1.0], [0.0], [1.0], [0.0]])
    p = np.array([[0.9], [0.2], [0.6], [0.3], [0.7], [0.4]])
    return evaluate_predictions(y, p, ["pneumonia"], {"pneumonia": 0.5}, metadata or None,
                                n_boot=10, split=split)


def test_report_names_the_split_evaluated() -> None:
    metrics = _tiny_metrics("val")
    text = render_html(metrics)
    assert "6 cases of the &#x27;val&#x27; split" in text
    assert "test cases" not in text and "this test data" not in text
    metrics["settings"]["thresholds_on_evaluated_cases"] = True
    text = render_html(metrics)
    assert "chosen on these same cases" in text and "optimistic" in text


def test_empty_subgroups_say_why() -> None:
    text = render_html(_tiny_metrics("test"))
    assert "No subgroup tables: the data has no sex, age or view values" in text
    text = render_html(_tiny_metrics("test", sex=["M", "F"] * 3, view=[""] * 6))
    assert "No view table" in text and "No subgroup tables" not in text
