"""``radiolens quantize``: an int8 OpenVINO model, its AUROC check in model.json, and
when the Predictor uses it."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from radiolens.cli.main import main


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        sick = i % 2
        pixels = rng.uniform(0, 0.3 + 0.4 * sick, (72, 64))
        Image.fromarray((pixels * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"image": f"{i}.png", "pneumonia": sick, "split": "val"})
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "pneumonia", "split"])
        w.writeheader()
        w.writerows(rows)
    return path


def test_quantize_records_the_check_and_predict_uses_int8(tiny_model: Path, table: Path,
                                                         tmp_path: Path) -> None:
    from radiolens.inference import Predictor

    run = tmp_path / "run"
    shutil.copytree(tiny_model, run)
    assert main(["-q", "quantize", "--checkpoint", str(run), "--data", str(table),
                 "--calibration", "16", "--max-auroc-drop", "0.9"]) == 0
    record = json.loads((run / "model.json").read_text())["int8"]
    assert record["accepted"] and record["images"] == 24 and record["calibration_images"] == 16
    assert set(record["auroc_fp32"]) == {"pneumonia"}
    assert (run / "model.int8.xml").is_file() and (run / "model.int8.bin").is_file()

    img = np.linspace(0, 1, 70 * 60, dtype=np.float32).reshape(70, 60)
    auto = Predictor(run, backend="openvino").load()
    assert auto.precision_ == "int8"
    fp32 = Predictor(run, backend="openvino", precision="fp32").load()
    assert fp32.precision_ == "fp32"
    a = auto.predict([img])[0].probabilities["pneumonia"]
    b = fp32.predict([img])[0].probabilities["pneumonia"]
    assert abs(a - b) < 0.05

    # made from other weights: the int8 model no longer belongs to these
    info = json.loads((run / "model.json").read_text())
    info["int8"]["weights_sha256"] = "0" * 64
    (run / "model.json").write_text(json.dumps(info))
    assert Predictor(run, backend="openvino").load().precision_ == "auto"
    with pytest.raises(Exception, match="other weights"):
        Predictor(run, backend="openvino", precision="int8").load()


def test_refused_int8_is_never_used(tiny_model: Path, table: Path, tmp_path: Path) -> None:
    from radiolens.errors import ConfigError
    from radiolens.inference import Predictor

    run = tmp_path / "run"
    shutil.copytree(tiny_model, run)
    assert main(["-q", "quantize", "--checkpoint", str(run), "--data", str(table),
                 "--calibration", "8", "--max-auroc-drop", "0.9"]) == 0
    info = json.loads((run / "model.json").read_text())
    info["int8"]["accepted"] = False
    (run / "model.json").write_text(json.dumps(info))
    assert Predictor(run, backend="openvino").load().precision_ == "auto"
    with pytest.raises(ConfigError, match="refused"):
        Predictor(run, backend="openvino", precision="int8").load()
    with pytest.raises(ConfigError, match="OpenVINO only"):
        Predictor(run, backend="onnx", precision="int8").load()


def test_quantize_refuses_a_builtin_without_output(table: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quantize", "--checkpoint", "builtin:pneumonia-kermany",
                 "--data", str(table)]) != 0
    assert "read-only" in capsys.readouterr().err
