"""Evaluate classifier predictions: metrics on numpy arrays, bootstrap CIs, operating
thresholds, calibration, subgroups, plots, an HTML report and run comparison.

Needs numpy and scikit-learn (``pip install 'radiolens[train]'``); matplotlib only when
plotting. It never imports torch: predictions arrive as arrays.

Example:
    >>> from radiolens.evaluate import choose_threshold, evaluate_predictions
    >>> thresholds = {name: choose_threshold(y_val[:, j], p_val[:, j], "youden")
    ...               for j, name in enumerate(labels)}  # on VALIDATION  # doctest: +SKIP
    >>> metrics = evaluate_predictions(y_test, p_test, labels, thresholds,
    ...                                case_ids=ids)  # doctest: +SKIP
    >>> write_metrics_json("run/metrics.json", metrics, config)  # doctest: +SKIP
"""

from __future__ import annotations

from radiolens.evaluate.compare import (
    check_same_data,
    compare_runs,
    format_paired_tests,
    write_comparison,
)
from radiolens.evaluate.html import render_html, write_html_report
from radiolens.evaluate.metrics import (
    AGE_BANDS,
    THRESHOLD_METHODS,
    Calibration,
    Confusion,
    EvaluationError,
    age_band,
    auprc,
    auroc,
    bootstrap_ci,
    calibration,
    check_threshold_method,
    choose_threshold,
    confusion_at,
)
from radiolens.evaluate.paired import (
    PairedTest,
    RunPredictions,
    delong_test,
    paired_auroc_tests,
    read_predictions,
)
from radiolens.evaluate.plots import (
    PLOT_KINDS,
    plot_calibration,
    plot_confusion,
    plot_evaluation,
    plot_learning_curve,
    plot_pr,
    plot_roc,
    plot_roc_overlay,
)
from radiolens.evaluate.report import (
    METRICS_VERSION,
    SUBGROUP_KEYS,
    data_fingerprint,
    evaluate_predictions,
    read_metrics_json,
    to_jsonable,
    write_metrics_json,
)

__all__ = [
    "AGE_BANDS",
    "METRICS_VERSION",
    "PLOT_KINDS",
    "SUBGROUP_KEYS",
    "THRESHOLD_METHODS",
    "Calibration",
    "Confusion",
    "EvaluationError",
    "PairedTest",
    "RunPredictions",
    "age_band",
    "auprc",
    "auroc",
    "bootstrap_ci",
    "calibration",
    "check_same_data",
    "check_threshold_method",
    "choose_threshold",
    "compare_runs",
    "confusion_at",
    "data_fingerprint",
    "delong_test",
    "evaluate_predictions",
    "format_paired_tests",
    "paired_auroc_tests",
    "plot_calibration",
    "plot_confusion",
    "plot_evaluation",
    "plot_learning_curve",
    "plot_pr",
    "plot_roc",
    "plot_roc_overlay",
    "read_metrics_json",
    "read_predictions",
    "render_html",
    "to_jsonable",
    "write_comparison",
    "write_html_report",
    "write_metrics_json",
]
