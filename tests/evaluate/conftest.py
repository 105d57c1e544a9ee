"""Fixtures for the evaluation tests: a small seeded test set and its metrics."""

from __future__ import annotations

from typing import Any

import pytest

from radiolens.evaluate import evaluate_predictions

from .synthetic import Predictions, make_predictions


@pytest.fixture(scope="session")
def preds() -> Predictions:
    return make_predictions()


@pytest.fixture(scope="session")
def metrics(preds: Predictions) -> dict[str, Any]:
    return evaluate_predictions(preds.y_true, preds.y_prob, preds.labels, preds.thresholds,
                                metadata=preds.metadata, n_boot=200, seed=0,
                                case_ids=preds.case_ids)
