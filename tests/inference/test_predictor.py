"""Predictor: same preprocessing as training, batching, ONNX parity, Grad-CAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radiolens.errors import ConfigError
from radiolens.inference import Predictor
from radiolens.models import ModelInfo, Preprocessing, build_model, save_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    model = build_model("small-vgg", 2)
    info = ModelInfo(architecture="small-vgg", task="multilabel", labels=["Effusion", "Mass"],
                     preprocessing=Preprocessing(image_size=64, mean=0.5, std=0.25),
                     thresholds={"Effusion": 0.5, "Mass": 0.0})
    out = tmp_path_factory.mktemp("run")
    save_run(out, model, info)
    return out


def test_predict_batches_match_single(run_dir: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.random((80, 60)).astype(np.float32) for _ in range(5)]
    p = Predictor(run_dir, batch_size=2).load()
    batched = p.predict(images)
    single = [p.predict([im])[0] for im in images]
    for a, b in zip(batched, single, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    assert all(r.flags["Mass"] for r in batched)  # threshold 0 flags everything
    assert set(batched[0].probabilities) == {"Effusion", "Mass"}


def test_onnx_backend_agrees_with_torch(run_dir: Path) -> None:
    rng = np.random.default_rng(1)
    images = [rng.random((64, 64)).astype(np.float32) for _ in range(3)]
    eager = Predictor(run_dir).load().predict(images)
    ort = Predictor(run_dir, backend="onnx").load().predict(images)
    for a, b in zip(eager, ort, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-4)


def test_files_with_errors_are_reported(run_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 255).astype(np.uint8)).save(good)
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all")
    results = Predictor(run_dir).load().predict_files([good, bad])
    assert results[0].prediction is not None and results[0].error is None
    assert results[1].prediction is None and "bad.dcm" in str(results[1].error)


def test_gradcam_heatmap(run_dir: Path) -> None:
    p = Predictor(run_dir).load()
    img = np.zeros((90, 70), dtype=np.float32)
    img[20:50, 10:40] = 1.0
    heat = p.explain(img, "Mass")
    assert heat.shape == (90, 70) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    with pytest.raises(ConfigError, match="Effusion"):
        p.explain(img, "Pneumonia")


def test_repeated_heatmaps_do_not_pile_up_hooks(run_dir: Path) -> None:
    """MONAI's GradCAM hooks the model and never unhooks it: one per model, not per call."""
    from radiolens.models import gradcam_target_layer

    p = Predictor(run_dir).load()
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    first = p.explain(img, "Mass")
    for _ in range(5):
        again = p.explain(img, "Mass")
    layer = p.model_.get_submodule(gradcam_target_layer(p.info_.architecture))
    assert len(layer._forward_hooks) == 1 and len(layer._backward_hooks) == 1
    np.testing.assert_allclose(first, again, atol=1e-6)


def test_unloaded_predictor_says_so(run_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="load"):
        _ = Predictor(run_dir).labels
