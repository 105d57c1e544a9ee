"""label-eval's counting agrees with scikit-learn."""

from __future__ import annotations

import random

import pytest

from radiolens.findings import Certainty
from radiolens.reports.scoring import evaluate_labels

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def test_scores_match_sklearn() -> None:
    rng = random.Random(0)
    values = [Certainty.POSITIVE, Certainty.NEGATIVE, Certainty.UNCERTAIN, None]
    findings = ["A", "B", "C"]
    gold = {str(i): {f: rng.choice(values) for f in findings} for i in range(300)}
    pred = {str(i): {f: rng.choice(values) for f in findings} for i in range(300)}
    for mode in ("negative", "positive"):
        ev = evaluate_labels(pred, gold, findings, mode)

        def binary(v: Certainty | None, mode: str = mode) -> int:
            return int(v is Certainty.POSITIVE or (mode == "positive" and v is Certainty.UNCERTAIN))

        y_true = [[binary(gold[i][f]) for f in findings] for i in gold]
        y_pred = [[binary(pred[i][f]) for f in findings] for i in gold]
        for avg, ours in (("micro", ev.micro), ("macro", ev.macro)):
            p, r, f1, _ = sklearn_metrics.precision_recall_fscore_support(
                y_true, y_pred, average=avg, zero_division=0)
            assert ours.precision == pytest.approx(p)
            assert ours.recall == pytest.approx(r)
            assert ours.f1 == pytest.approx(f1)
