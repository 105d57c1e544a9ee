"""The lung U-Net through ONNX Runtime: the same masks as PyTorch, and no torch at run time."""

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
from radiolens.segment import LungSegmenter
seg = LungSegmenter(sys.argv[1], backend="onnx").load()
yy, xx = np.mgrid[0:90, 0:70]
img = (0.5 + 0.4 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.float32)
prob = seg.probabilities([img])[0]
print(json.dumps({"torch": "torch" in sys.modules, "sum": float(prob.sum()),
                  "shape": list(prob.shape)}))
"""


def _image() -> np.ndarray:
    yy, xx = np.mgrid[0:90, 0:70]
    return (0.5 + 0.4 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.float32)


def test_onnx_and_torch_give_the_same_probabilities(tiny_seg_model: Path, synthetic_masks: Path
                                                    ) -> None:
    from radiolens.imaging import read_image
    from radiolens.segment import LungSegmenter
    from radiolens.segment.table import read_mask_table

    images = [read_image(p.image).pixels for p in read_mask_table(synthetic_masks)[:3]]
    images.append(_image())
    eager = LungSegmenter(tiny_seg_model, backend="torch").load()
    fast = LungSegmenter(tiny_seg_model, backend="onnx").load()
    assert (eager.backend_, fast.backend_) == ("torch", "onnx")
    for a, b in zip(eager.probabilities(images), fast.probabilities(images), strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-4
    for a, b in zip(eager.segment_many(images), fast.segment_many(images), strict=True):
        assert (a.mask != b.mask).mean() < 0.001


def test_onnx_backend_runs_without_torch_once_exported(tiny_seg_model: Path,
                                                       tmp_path: Path) -> None:
    env = {**os.environ, "RADIOLENS_CACHE": str(tmp_path)}

    def run() -> dict:
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_seg_model)], env=env,
                             check=True, capture_output=True, text=True, timeout=300)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert first["torch"] is True and second["torch"] is False   # exported once, cached
    assert second["shape"] == [90, 70]
    assert second["sum"] == pytest.approx(first["sum"], rel=1e-5)
    assert list((tmp_path / "onnx-seg").glob("*.onnx"))


def test_unknown_backend_is_a_clear_error(tiny_seg_model: Path) -> None:
    from radiolens.errors import ConfigError
    from radiolens.segment import LungSegmenter

    with pytest.raises(ConfigError, match="use auto, torch or onnx"):
        LungSegmenter(tiny_seg_model, backend="tensorrt").load()
    assert json.loads((tiny_seg_model / "model.json").read_text())["format"] == \
        "radiolens-seg-model"


def test_auto_falls_back_to_torch_when_the_export_fails(tiny_seg_model: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    from radiolens.errors import CheckpointError
    from radiolens.segment import LungSegmenter, run

    def broken(*_args: object, **_kwargs: object) -> Path:
        raise CheckpointError("ONNX export of the unet failed: no exporter")

    monkeypatch.setenv("RADIOLENS_CACHE", str(tmp_path))  # nothing exported yet
    monkeypatch.setattr(run, "export_seg_onnx", broken)
    seg = LungSegmenter(tiny_seg_model).load()
    assert seg.backend_ == "torch"
    assert "using PyTorch" in caplog.text
    assert seg.segment(_image()).mask.shape == (90, 70)
    with pytest.raises(CheckpointError, match="no exporter"):
        LungSegmenter(tiny_seg_model, backend="onnx").load()
