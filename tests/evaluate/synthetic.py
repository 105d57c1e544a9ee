"""Synthetic predictions for the evaluation tests (seeded, small, generated in memory)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Predictions:
    """A tiny test set: 3 labels, NaN labels, metadata and case ids."""

    y_true: np.ndarray
    y_prob: np.ndarray
    labels: list[str]
    thresholds: dict[str, float]
    metadata: dict[str, np.ndarray]
    case_ids: list[str]


def make_predictions(n: int = 240, seed: int = 7) -> Predictions:
    """Informative but imperfect scores; label 0 has missing labels, label 2 is rare."""
    rng = np.random.default_rng(seed)
    labels = ["Effusion", "No Finding", "Pneumothorax"]
    prevalence = np.array([0.3, 0.5, 0.08])
    y = (rng.random((n, 3)) < prevalence).astype(float)
    logits = 1.6 * (2 * y - 1) + rng.normal(0.0, 1.2, size=(n, 3))
    p = 1.0 / (1.0 + np.exp(-logits))
    y[rng.random(n) < 0.1, 0] = np.nan
    metadata = {
        "sex": rng.choice(np.array(["F", "M"], dtype=object), size=n),
        "age": rng.integers(5, 95, size=n).astype(float),
        "view": rng.choice(np.array(["PA", "AP"], dtype=object), size=n),
    }
    metadata["sex"][:3] = None  # unknown sex: left out of the sex subgroups
    return Predictions(y, p, labels, {"Effusion": 0.5, "No Finding": 0.4, "Pneumothorax": 0.6},
                       metadata, [f"case-{i:04d}" for i in range(n)])
