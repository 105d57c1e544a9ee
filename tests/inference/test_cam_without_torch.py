"""Heatmaps from the exported model's class activation maps equal torch Grad-CAM, and
need no torch once the model is exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

IMAGE = np.clip(np.add.outer(np.linspace(0, 1, 90), np.sin(np.linspace(0, 9, 70)) / 3),
                0, 1).astype(np.float32)


def _run_dir(tmp_path: Path, architecture: str) -> Path:
    import torch

    from radiolens.models import ModelInfo, Preprocessing, build_model, head_layer, save_run

    torch.manual_seed(0)
    model = build_model(architecture, 2)
    head = model.get_submodule(head_layer(architecture))
    with torch.no_grad():  # label "a": positive weights on non-negative features -> a map
        head.weight[0].abs_()
    info = ModelInfo(architecture=architecture, task="multilabel", labels=["a", "b"],
                     preprocessing=Preprocessing(image_size=64, mean=0.5, std=0.25))
    out = tmp_path / architecture
    save_run(out, model, info)
    return out


@pytest.mark.parametrize("architecture", ["resnet18", "densenet121"])
def test_cam_equals_gradcam(architecture: str, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens.inference import Predictor

    monkeypatch.setenv("RADIOLENS_CACHE", str(tmp_path / "cache"))
    run = _run_dir(tmp_path, architecture)
    eager = Predictor(run, backend="torch").load()
    fast = Predictor(run, backend="onnx").load()
    assert fast.gives_activations
    for label in ("a", "b"):
        want = eager.explain(IMAGE, label)
        got = fast.explain(IMAGE, label)
        assert got.shape == want.shape == IMAGE.shape
        assert np.abs(got - want).max() < 1e-3, label
    assert eager.explain(IMAGE, "a").max() > 0.9  # a real map, not all zeros
    pred = fast.predict([IMAGE])[0]
    assert pred.activation is not None and pred.activation.image_shape == IMAGE.shape
    np.testing.assert_allclose(fast.explain(IMAGE, "a", prediction=pred),
                               fast.explain(IMAGE, "a"), atol=1e-5)
    with pytest.raises(ValueError, match="image of"):
        fast.explain(IMAGE[:50], "a", prediction=pred)
    assert eager.predict([IMAGE])[0].activation is None  # torch: Grad-CAM on demand


def test_small_vgg_has_no_exact_cam_and_falls_back_to_gradcam(tiny_model: Path,
                                                              tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    from radiolens.inference import Predictor

    monkeypatch.setenv("RADIOLENS_CACHE", str(tmp_path))
    fast = Predictor(tiny_model, backend="onnx").load()
    assert not fast.gives_activations
    assert fast.predict([IMAGE])[0].activation is None
    heat = fast.explain(IMAGE)
    np.testing.assert_allclose(heat, Predictor(tiny_model).load().explain(IMAGE), atol=1e-5)


SCRIPT = """
import json, sys
import numpy as np
from radiolens.inference import Predictor
p = Predictor(sys.argv[1], backend=sys.argv[2]).load()
img = np.linspace(0, 1, 90 * 70, dtype=np.float32).reshape(90, 70)
pred = p.predict([img])[0]
heat = p.explain(img, "a", prediction=pred)
print(json.dumps({"torch": "torch" in sys.modules, "max": float(heat.max()),
                  "shape": list(heat.shape)}))
"""


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_heatmaps_without_torch(backend: str, tmp_path: Path) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    run = _run_dir(tmp_path, "resnet18")
    env = {**os.environ, "RADIOLENS_CACHE": str(tmp_path / "cache")}
    for expect_torch in (True, False):  # the first run exports (torch), then cached
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(run), backend], env=env,
                             check=True, capture_output=True, text=True, timeout=300)
        doc = json.loads(out.stdout.strip().splitlines()[-1])
        assert doc["torch"] is expect_torch
        assert doc["shape"] == [90, 70] and doc["max"] > 0.9
