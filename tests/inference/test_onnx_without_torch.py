"""Scoring through ONNX Runtime never imports torch once the model is exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = """
import json, sys
import numpy as np
from radiolens.inference import Predictor
p = Predictor(sys.argv[1], backend="onnx").load()
img = np.linspace(0, 1, 80 * 60, dtype=np.float32).reshape(80, 60)
probs = p.predict([img])[0].probabilities
print(json.dumps({"torch": "torch" in sys.modules, "probs": probs}))
"""


def _run(model: Path, cache: Path) -> dict:
    env = {**os.environ, "RADIOLENS_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(model)], env=env, check=True,
                         capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_onnx_backend_exports_once_then_runs_without_torch(tiny_model: Path,
                                                           tmp_path: Path) -> None:
    from radiolens.inference import Predictor
    from radiolens.inference.predictor import onnx_cache_path

    first = _run(tiny_model, tmp_path)           # no model.onnx: exported (needs torch)
    assert first["torch"] is True
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADIOLENS_CACHE", str(tmp_path))
        assert onnx_cache_path(tiny_model).is_file()
    second = _run(tiny_model, tmp_path)          # cached export: torch never imported
    assert second["torch"] is False
    img = np.linspace(0, 1, 80 * 60, dtype=np.float32).reshape(80, 60)
    eager = Predictor(tiny_model).load().predict([img])[0].probabilities
    for name, value in eager.items():
        assert abs(second["probs"][name] - value) < 1e-4


def test_cache_key_follows_the_model(tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    from radiolens.inference.predictor import onnx_cache_path

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert onnx_cache_path(copy) == onnx_cache_path(tiny_model)
    info = json.loads((copy / "model.json").read_text())
    info["thresholds"] = {"pneumonia": 0.3}
    (copy / "model.json").write_text(json.dumps(info))
    assert onnx_cache_path(copy) != onnx_cache_path(tiny_model)


def test_openvino_and_auto_give_the_same_scores(tiny_model: Path, tmp_path: Path,
                                                monkeypatch) -> None:
    import pytest

    from radiolens.errors import ConfigError
    from radiolens.inference import Predictor
    from radiolens.inference.predictor import resolve_backend
    from radiolens.models.openvino_runtime import openvino_available

    monkeypatch.setenv("RADIOLENS_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    images = [rng.random((70, 50)).astype(np.float32) for _ in range(5)]
    eager = [p.probabilities["pneumonia"] for p in Predictor(tiny_model).load().predict(images)]
    if not openvino_available():
        pytest.skip("openvino not installed (pip install radiolens[fast])")
    for precision, tol in (("fp32", 1e-4), ("auto", 2e-2)):
        ov = Predictor(tiny_model, backend="openvino", precision=precision).load()
        got = [p.probabilities["pneumonia"] for p in ov.predict(images)]
        np.testing.assert_allclose(got, eager, atol=tol)
    assert resolve_backend("auto") == "openvino"
    assert list((tmp_path / "openvino").iterdir()), "compiled models are cached"
    auto = Predictor(tiny_model, backend="auto").load()
    assert auto.backend_ == "openvino"
    with pytest.raises(ConfigError, match="bf16"):
        Predictor(tiny_model, backend="onnx", precision="bf16").load()
    with pytest.raises(ConfigError, match="unknown backend"):
        Predictor(tiny_model, backend="tensorrt").load()  # type: ignore[arg-type]
    # heatmaps still work with a compiled backend (the torch network loads on first use)
    assert auto.explain(images[0]).shape == (70, 50)


def test_openvino_threads_are_not_pinned_to_cores(tiny_model: Path, tmp_path: Path,
                                                  monkeypatch) -> None:
    """Several scoring processes (``predict --workers``, Ray actors, the service) must not
    all share the first core: OpenVINO pins its threads unless told not to."""
    from radiolens.inference import Predictor
    from radiolens.models.openvino_runtime import openvino_available, openvino_model

    if not openvino_available():
        pytest.skip("openvino not installed (pip install radiolens[fast])")
    monkeypatch.setenv("RADIOLENS_CACHE", str(tmp_path))
    onnx = Predictor(tiny_model, backend="onnx").load().onnx_file()
    compiled = openvino_model(onnx, threads=1)
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
