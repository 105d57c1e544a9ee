"""Compare evaluation runs side by side, and check that they share their test data.

Example:
    >>> from radiolens.evaluate import compare_runs, read_metrics_json
    >>> runs = [(d, read_metrics_json(d)) for d in ("runs/densenet", "runs/resnet")]
    ...     # doctest: +SKIP
    >>> print(compare_runs(runs))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_same_data", "compare_runs"]

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
