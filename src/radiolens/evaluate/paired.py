"""Paired comparison of two models' AUROC on the same cases (DeLong's test).

DeLong, DeLong and Clarke-Pearson (Biometrics 1988), computed with midranks as in Sun
and Xu (IEEE Signal Processing Letters 2014). Both models must have scored the same
cases; :func:`paired_auroc_tests` pairs runs by case id.

Example:
    >>> from radiolens.evaluate import delong_test
    >>> delong_test([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1], [0.6, 0.4, 0.5, 0.2]).p_value
    ... # doctest: +SKIP
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import norm, rankdata

from radiolens.errors import InputFormatError
from radiolens.evaluate.metrics import EvaluationError

__all__ = ["PairedTest", "RunPredictions", "delong_test", "paired_auroc_tests",
           "read_predictions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairedTest:
    """DeLong's test of ``auroc_a - auroc_b`` on ``n`` shared cases."""

    auroc_a: float
    auroc_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    n_positive: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class RunPredictions:
    """One run's ``predictions.csv``: case ids, and per label the truth (NaN = missing)
    and the probability, in the order of ``ids``."""

    ids: tuple[str, ...]
    y: Mapping[str, npt.NDArray[np.float64]]
    p: Mapping[str, npt.NDArray[np.float64]]


def _structural(y: npt.NDArray[np.bool_], scores: npt.NDArray[np.float64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                           npt.NDArray[np.float64]]:
    """AUROCs and DeLong's structural components for each row of ``scores``."""
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    v01 = (tz[:, :m] - tx) / n
    v10 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v01, v10


def delong_test(y: npt.ArrayLike, p_a: npt.ArrayLike, p_b: npt.ArrayLike, *,
                alpha: float = 0.05) -> PairedTest:
    """Two-sided DeLong test that two correlated AUROCs (same cases) are equal.

    Args:
        y: true labels 1 / 0 (NaN cases are dropped).
        p_a: probabilities of model A for the same cases.
        p_b: probabilities of model B.
        alpha: 1 - confidence level of the interval of the difference.

    Raises:
        EvaluationError: the shapes differ or a class is missing.
    """
    ya = np.asarray(y, dtype=np.float64)
    scores = np.vstack([np.asarray(p_a, dtype=np.float64), np.asarray(p_b, dtype=np.float64)])
    if scores.shape[1] != ya.shape[0]:
        raise EvaluationError("y, p_a and p_b must hold the same cases")
    keep = ~np.isnan(ya)
    yb, scores = ya[keep] == 1.0, scores[:, keep]
    if yb.all() or not yb.any():
        raise EvaluationError("a paired AUROC test needs positive and negative cases")
    aucs, v01, v10 = _structural(yb, scores)
    cov = np.cov(v01) / v01.shape[1] + np.cov(v10) / v10.shape[1]
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = float(aucs[0] - aucs[1])
    se = math.sqrt(var) if var > 0 else 0.0
    p_value = float(2 * norm.sf(abs(diff) / se)) if se > 0 else float(diff == 0)
    half = float(norm.ppf(1 - alpha / 2)) * se
    return PairedTest(float(aucs[0]), float(aucs[1]), diff, diff - half, diff + half,
                      p_value, int(yb.size), int(yb.sum()))


def read_predictions(path: str | Path) -> RunPredictions:
    """Read ``predictions.csv`` as written by ``radiolens evaluate``.

    Raises:
        InputFormatError: the file is unreadable or lacks the ``id`` column.
    """
    p = Path(path)
    try:
        with p.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cannot read predictions ({exc})", str(p)) from None
    header = list(rows[0]) if rows else []
    if "id" not in header:
        raise InputFormatError("has no 'id' column; is it a predictions.csv of `radiolens "
                               "evaluate`?", str(p))
    labels = [h[: -len("_prob")] for h in header if h.endswith("_prob")
              and f"{h[: -len('_prob')]}_true" in header]

    def column(key: str) -> npt.NDArray[np.float64]:
        return np.array([float(r[key]) if r[key] not in ("", None) else math.nan
                         for r in rows], dtype=np.float64)

    return RunPredictions(tuple(r["id"] for r in rows),
                          {n: column(f"{n}_true") for n in labels},
                          {n: column(f"{n}_prob") for n in labels})


def _pair(a: RunPredictions, b: RunPredictions, label: str
          ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Truth and both runs' probabilities on the cases both runs scored with a label."""
    index_b = {cid: i for i, cid in enumerate(b.ids)}
    ia = [i for i, cid in enumerate(a.ids) if cid in index_b]
    ib = [index_b[a.ids[i]] for i in ia]
    ya, yb = a.y[label][ia], b.y[label][ib]
    agree = (ya == yb) | (np.isnan(ya) & np.isnan(yb))
    if not agree.all():
        logger.warning("%s: %d shared cases have different ground truth in the two runs; "
                       "left out of the paired test", label, int((~agree).sum()))
    keep = agree & ~np.isnan(ya)
    return ya[keep], a.p[label][ia][keep], b.p[label][ib][keep]


def paired_auroc_tests(runs: Sequence[tuple[str, RunPredictions]],
                       alpha: float = 0.05) -> list[dict[str, Any]]:
    """DeLong's test of every run against the first, per shared label, on shared cases.

    Returns:
        Rows ``{"label", "reference", "run", "n", "n_positive", "auroc_reference",
        "auroc_run", "difference" (run minus reference), "ci_low", "ci_high",
        "p_value"}``; a pair without both classes on its shared cases is skipped with a
        warning.
    """
    if len(runs) < 2:
        return []
    ref_name, ref = runs[0]
    rows: list[dict[str, Any]] = []
    for name, other in runs[1:]:
        for label in [lab for lab in ref.y if lab in other.y]:
            y, pa, pb = _pair(ref, other, label)
            try:
                t = delong_test(y, pb, pa, alpha=alpha)
            except EvaluationError as exc:
                logger.warning("%s, %s vs %s: no paired test (%s; %d shared cases)", label,
                               ref_name, name, exc, y.size)
                continue
            rows.append({"label": label, "reference": ref_name, "run": name, "n": t.n,
                         "n_positive": t.n_positive, "auroc_reference": t.auroc_b,
                         "auroc_run": t.auroc_a, "difference": t.difference,
                         "ci_low": t.ci_low, "ci_high": t.ci_high, "p_value": t.p_value})
    return rows
