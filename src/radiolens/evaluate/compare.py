"""Compare evaluation runs side by side, and check that they share their test data.

Example:
    >>> from radiolens.evaluate import compare_runs, read_metrics_json
    >>> runs = [(d, read_metrics_json(d)) for d in ("runs/densenet", "runs/resnet")]
    ...     # doctest: +SKIP
    >>> print(compare_runs(runs))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["check_same_data", "compare_runs", "format_paired_tests", "write_comparison"]

#: Columns of ``compare.csv``: one row per label and run; the paired test (DeLong) of the
#: run against the first run is blank on the first run's own rows.
COMPARE_FIELDS = ["label", "run", "auroc", "auroc_ci_low", "auroc_ci_high", "threshold",
                  "sensitivity", "specificity", "reference", "n_paired", "auroc_difference",
                  "difference_ci_low", "difference_ci_high", "p_value"]

logger = logging.getLogger(__name__)

Run = tuple[str, Mapping[str, Any]]


def _fmt(value: Any) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.3f}" if value == value else "-"


def _auroc_ci(rec: Mapping[str, Any] | None) -> str:
    if rec is None:
        return "-"
    text = _fmt(rec.get("auroc"))
    ci = rec.get("auroc_ci")
    if text != "-" and isinstance(ci, Sequence) and len(ci) == 2 and None not in ci:
        text += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return text


def check_same_data(metrics_list: Sequence[Run]) -> bool:
    """Whether every run was evaluated on the same test data, judged by the ``data``
    fingerprint of ``metrics.json`` (case count, hash of the case ids, hash of the
    targets). Logs a warning for each run that differs from the first or cannot be
    checked.

    Returns:
        True only when all runs are confirmed to share their test data.
    """
    if len(metrics_list) < 2:
        return True
    ref_name, ref_metrics = metrics_list[0]
    ref = ref_metrics.get("data") or {}
    same = True
    if not ref:
        logger.warning("run %r has no 'data' fingerprint; cannot check that the runs share "
                       "their test data (evaluate with case_ids=...)", ref_name)
        return False
    for name, metrics in metrics_list[1:]:
        fp = metrics.get("data") or {}
        if not fp:
            logger.warning("run %r has no 'data' fingerprint; cannot check that it shares the "
                           "test data of %r", name, ref_name)
            same = False
            continue
        reason = None
        if fp.get("n_cases") != ref.get("n_cases"):
            reason = f"{fp.get('n_cases')} vs {ref.get('n_cases')} cases"
        elif (fp.get("case_ids_sha256") and ref.get("case_ids_sha256")
              and fp["case_ids_sha256"] != ref["case_ids_sha256"]):
            reason = "different case ids"
        elif fp.get("labels") == ref.get("labels") and (
                fp.get("targets_sha256") != ref.get("targets_sha256")):
            reason = "different ground-truth labels"
        if reason:
            logger.warning(
                "runs %r and %r were evaluated on different test data (%s); their metrics "
                "are not directly comparable", ref_name, name, reason)
            same = False
        elif not (fp.get("case_ids_sha256") and ref.get("case_ids_sha256")):
            logger.warning(
                "runs %r and %r have the same number of cases but no case-id hash; cannot "
                "confirm they share their test data (evaluate with case_ids=...)",
                ref_name, name)
            same = False
    return same


def compare_runs(metrics_list: Sequence[Run]) -> str:
    """A plain-text table comparing runs: one row per label (in first-seen order) and a
    ``macro`` row; per run, AUROC [CI], sensitivity and specificity at that run's
    operating threshold. A dash marks a value a run does not have.

    Warns (logging) and adds a note under the table when the runs were not evaluated on
    the same test data (see :func:`check_same_data`).

    Args:
        metrics_list: ``(run name, metrics.json content)`` pairs.
    """
    if not metrics_list:
        return "(no runs to compare)"
    labels: list[str] = []
    for _, metrics in metrics_list:
        labels += [lab for lab in metrics.get("labels", {}) if lab not in labels]

    rows: list[tuple[str, list[tuple[str, str, str]]]] = []
    for lab in labels:
        cells = []
        for _, metrics in metrics_list:
            rec = metrics.get("labels", {}).get(lab)
            cells.append((_auroc_ci(rec), _fmt(rec.get("sensitivity")) if rec else "-",
                          _fmt(rec.get("specificity")) if rec else "-"))
        rows.append((lab, cells))
    macro_cells = []
    for _, metrics in metrics_list:
        m = metrics.get("macro") or {}
        macro_cells.append((_fmt(m.get("auroc")), _fmt(m.get("sensitivity")),
                            _fmt(m.get("specificity"))))
    rows.append(("macro", macro_cells))

    level = 100 * (1 - float((metrics_list[0][1].get("settings") or {}).get("alpha", 0.05)))
    sub = (f"AUROC [{level:g}% CI]", "sens", "spec")
    w_label = max(len("label"), *(len(r[0]) for r in rows))
    w_auc = max(len(sub[0]), *(len(c[0]) for _, cells in rows for c in cells))
    w_rate = 6
    w_group = max(w_auc + 2 * (w_rate + 1), *(len(name) for name, _ in metrics_list))

    def group(a: str, s: str, p: str) -> str:
        return f"{a:<{w_auc}} {s:>{w_rate}} {p:>{w_rate}}".ljust(w_group)

    head1 = f"{'':<{w_label}}" + "".join(f" | {name:<{w_group}}" for name, _ in metrics_list)
    head2 = f"{'label':<{w_label}}" + "".join(f" | {group(*sub)}" for _ in metrics_list)
    rule = "-" * len(head2)
    lines = [head1.rstrip(), head2.rstrip(), rule]
    for i, (lab, cells) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append(rule)
        lines.append((f"{lab:<{w_label}}" + "".join(f" | {group(*c)}" for c in cells)).rstrip())
    if not check_same_data(metrics_list):
        lines.append("note: these runs may not share their test data; compare with care "
                     "(see the warnings)")
    return "\n".join(lines)


def format_paired_tests(tests: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of :func:`~radiolens.evaluate.paired_auroc_tests` rows."""
    if not tests:
        return "(no paired test: the runs share no scored cases with both classes)"
    head = (f"{'label':<20} {'run vs reference':<30} {'n':>6} {'AUROC diff [95% CI]':>26} "
            f"{'p':>8}")
    lines = ["paired DeLong test of AUROC on the cases both runs scored:", head,
             "-" * len(head)]
    for t in tests:
        pair = f"{t['run']} vs {t['reference']}"
        diff = f"{t['difference']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}]"
        lines.append(f"{t['label']:<20} {pair:<30} {t['n']:>6} {diff:>26} "
                     f"{_p(t['p_value']):>8}")
    return "\n".join(lines)


def _p(value: float) -> str:
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _csv_rows(runs: Sequence[Run], tests: Sequence[Mapping[str, Any]]
              ) -> list[dict[str, Any]]:
    by_pair = {(t["label"], t["run"]): t for t in tests}
    rows = []
    labels = list(dict.fromkeys(lab for _, m in runs for lab in m.get("labels", {})))
    for label in labels:
        for name, metrics in runs:
            rec = metrics.get("labels", {}).get(label)
            if rec is None:
                continue
            ci = rec.get("auroc_ci") or [None, None]
            t = by_pair.get((label, name), {})
            rows.append({"label": label, "run": name, "auroc": rec.get("auroc"),
                         "auroc_ci_low": ci[0], "auroc_ci_high": ci[1],
                         "threshold": rec.get("threshold"),
                         "sensitivity": rec.get("sensitivity"),
                         "specificity": rec.get("specificity"),
                         "reference": t.get("reference"), "n_paired": t.get("n"),
                         "auroc_difference": t.get("difference"),
                         "difference_ci_low": t.get("ci_low"),
                         "difference_ci_high": t.get("ci_high"), "p_value": t.get("p_value")})
    return rows


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "label"


def write_comparison(out_dir: str | Path, runs: Sequence[Run],
                     tests: Sequence[Mapping[str, Any]],
                     curves: Mapping[str, Mapping[str, tuple[Any, Any]]] | None = None
                     ) -> dict[str, Path]:
    """Write ``compare.csv``, ``roc_<label>.png`` (overlaid ROC curves) and
    ``compare.html`` (the table, the paired tests and the plots) into ``out_dir``.

    Args:
        out_dir: the folder to write (created).
        runs: ``(run name, metrics.json content)`` pairs.
        tests: rows of :func:`~radiolens.evaluate.paired_auroc_tests`.
        curves: ``{label: {run: (y, p)}}`` for the ROC overlays (none when omitted).

    Returns:
        ``{"csv": path, "html": path, "roc_<label>": path, ...}``.
    """
    from radiolens.evaluate.html import render_comparison_html
    from radiolens.evaluate.plots import plot_roc_overlay
    from radiolens.evaluate.report import _write_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"csv": out / "compare.csv"}
    with written["csv"].open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COMPARE_FIELDS)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()}
                         for row in _csv_rows(runs, tests))
    plots: dict[str, Path] = {}
    for label, by_run in (curves or {}).items():
        plots[label] = plot_roc_overlay(by_run, out / f"roc_{_slug(label)}.png", label=label)
        written[f"roc_{label}"] = plots[label]
    written["html"] = out / "compare.html"
    _write_atomic(written["html"], render_comparison_html(
        compare_runs(runs), format_paired_tests(tests), tests, plots))
    return written
