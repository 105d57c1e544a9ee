"""Inference: :class:`Predictor` scores radiographs with a radiolens model.

Needs the ``train`` extra (torch, MONAI).
"""

from __future__ import annotations

from radiolens.inference.predictor import FilePrediction, Prediction, Predictor

__all__ = ["FilePrediction", "Prediction", "Predictor"]
