"""`radiolens model-card` and `radiolens import-weights chexnet`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from radiolens.cli.main import main
from radiolens.findings import CHEXNET_ORDER
from radiolens.models import ModelInfo, Preprocessing, build_model, save_run


def _chexnet_like_state_dict() -> dict[str, torch.Tensor]:
    """A randomly initialised state dict with the published CheXNet key layout."""
    from radiolens.models.pretrained import to_monai_densenet_keys  # noqa: F401

    torch.manual_seed(0)
    model = build_model("densenet121", 14, in_channels=3)
    state = {}
    for key, value in model.state_dict().items():
        # MONAI: features.denseblock1.denselayer1.layers.norm1.weight, class_layers.out.*
        k = key.replace(".layers.", ".")
        k = k.replace("class_layers.out.", "classifier.0.")
        # the old torchvision layout CheXNet used: norm.1 / conv.1
        for part in ("norm1", "norm2", "conv1", "conv2", "relu1", "relu2"):
            k = k.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        state[f"module.densenet121.{k}"] = value.clone()
    return state


def test_import_chexnet_then_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "model.pth.tar"
    torch.save({"state_dict": _chexnet_like_state_dict(), "epoch": 1}, ckpt)
    out = tmp_path / "chexnet"
    assert main(["import-weights", "chexnet", str(ckpt), "-o", str(out)]) == 0
    info = json.loads((out / "model.json").read_text())
    assert info["labels"] == [str(f) for f in CHEXNET_ORDER]
    assert info["preprocessing"]["image_size"] == 224
    assert "14 labels" in capsys.readouterr().out


def test_import_rejects_a_non_checkpoint(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"garbage")
    assert main(["import-weights", "chexnet", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "x.pth" in capsys.readouterr().err


def test_model_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = build_model("small-vgg", 1)
    info = ModelInfo(architecture="small-vgg", task="binary", labels=["pneumonia"],
                     preprocessing=Preprocessing(image_size=64, mean=0.5, std=0.25),
                     thresholds={"pneumonia": 0.4}, threshold_method="youden on validation",
                     training={"train": {"images": 10, "patients": 5,
                                         "positives": {"pneumonia": 4},
                                         "negatives": {"pneumonia": 6}}},
                     validation={"labels": {"pneumonia": {"auroc": 0.9,
                                                          "auroc_ci": [0.8, 0.97],
                                                          "threshold": 0.4,
                                                          "sensitivity": 0.95,
                                                          "calibration": {"ece": 0.05}}}})
    save_run(tmp_path / "run", model, info)
    (tmp_path / "run" / "card.yaml").write_text(
        "intended_use: [Research only.]\nfailure_modes: [Adults are out of scope.]\n")
    assert main(["model-card", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "0.900 [0.800, 0.970]" in text
    assert "Research only." in text and "Adults are out of scope." in text
    assert "never replaces" in text
    assert "youden on validation" in text
