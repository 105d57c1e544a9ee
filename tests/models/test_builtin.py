"""The models radiolens ships: complete, small, documented, and not garbage."""

from __future__ import annotations

import pytest

from radiolens.cli.main import main
from radiolens.models import builtin_names, read_model_info, resolve_run_dir

SHIPPED = ["abnormal-adult", "pneumonia-kermany"]


def test_builtin_models_are_listed() -> None:
    assert set(SHIPPED) <= set(builtin_names())


@pytest.mark.parametrize("name", SHIPPED)
def test_builtin_model_is_complete(name: str) -> None:
    folder = resolve_run_dir(f"builtin:{name}")
    assert (folder / "model.safetensors").stat().st_size < 30 * 1024 * 1024
    info = read_model_info(folder)
    assert len(info.labels) == 1 and info.task == "binary"
    label = info.labels[0]
    assert 0 < info.thresholds[label] < 1 and "validation" in info.threshold_method
    rec = info.validation["labels"][label]
    assert rec["auroc_ci"][0] <= rec["auroc"] <= rec["auroc_ci"][1]
    assert info.training["train"]["images"] > 500
    assert (folder / "card.yaml").is_file() and (folder / "MODEL_CARD.md").is_file()


@pytest.mark.parametrize("name", SHIPPED)
def test_model_card_command(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model-card", f"builtin:{name}"]) == 0
    card = capsys.readouterr().out
    for heading in ("## Intended use", "## Training data", "## Validation metrics",
                    "## Operating thresholds", "## Known failure modes"):
        assert heading in card
    assert "never replaces" in card
    assert card.strip() == (resolve_run_dir(f"builtin:{name}") / "MODEL_CARD.md"
                            ).read_text().strip()


def test_pneumonia_model_ranks_the_demo_cases() -> None:
    """The eight demo images (validation split, not trained on): every pneumonia case
    must score above every normal one. A sanity check of the shipped weights."""
    from radiolens.cli.demo_triage import example_cases
    from radiolens.inference import Predictor

    cases = example_cases()
    predictor = Predictor("builtin:pneumonia-kermany").load()
    results = predictor.predict_files([c["path"] for c in cases])
    probs = {c["label"]: [] for c in cases}  # type: dict[str, list[float]]
    for case, r in zip(cases, results, strict=True):
        assert r.prediction is not None
        probs[case["label"]].append(r.prediction.probabilities["pneumonia"])
    assert min(probs["PNEUMONIA"]) > max(probs["NORMAL"])


@pytest.mark.parametrize("name", ["builtin:lungs", "builtin:lungs-unet"])
def test_builtin_lung_model_is_complete_and_segments_a_radiograph(name: str) -> None:
    """The lung models: small, documented, their validation Dice recorded, and a mask
    of the input's size."""
    from radiolens.segment import LungSegmenter, read_seg_info

    folder = resolve_run_dir(name)
    assert (folder / "model.safetensors").stat().st_size < 10 * 1024 * 1024
    info = read_seg_info(name)
    dice = info.validation["dice"]
    assert dice["ci"][0] <= dice["mean"] <= dice["ci"][1]
    assert info.training["train_pairs"] > 200
    card = (folder / "MODEL_CARD.md").read_text()
    assert "never replaces" in card and "cardiothoracic" in card and name in card
    import numpy as np

    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    seg = LungSegmenter(name).load()
    result = seg.segment(np.clip(0.2 + 0.5 * yy * xx, 0, 1).astype(np.float32))
    assert result.mask.shape == (256, 256)   # any input gives a mask of its own size


def test_model_card_of_the_lung_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model-card", "builtin:lungs"]) == 0
    assert "Lung segmentation" in capsys.readouterr().out
