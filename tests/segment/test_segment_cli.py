"""train-seg, segment, evaluate-seg and explain from the command line, on synthetic
radiographs with lung masks; and the lung crop in training and inference."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radiolens.cli.main import main


def test_train_seg_run_directory(tiny_seg_model: Path) -> None:
    for name in ("model.safetensors", "model.json", "config.yaml", "history.csv",
                 "learning_curve.png", "val_scores.csv", "MODEL_CARD.md"):
        assert (tiny_seg_model / name).is_file(), name
    info = json.loads((tiny_seg_model / "model.json").read_text())
    assert info["format"] == "radiolens-seg-model" and info["architecture"] == "unet"
    assert info["validation"]["dice"]["mean"] > 0.85, info["validation"]
    assert "never replaces" in (tiny_seg_model / "MODEL_CARD.md").read_text()


def test_segment_writes_masks_of_the_input_size(tiny_seg_model: Path, synthetic_masks: Path,
                                                tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    images = sorted((synthetic_masks.parent / "images").glob("*.png"))[:4]
    out = tmp_path / "masks"
    code = main(["-q", "segment", "--checkpoint", str(tiny_seg_model), *map(str, images),
                 "-o", str(out)])
    assert code in (0, 1)
    for img in images:
        mask = np.asarray(Image.open(out / f"{img.stem}_lung.png"))
        assert mask.shape == np.asarray(Image.open(img)).shape and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        truth = np.asarray(Image.open(synthetic_masks.parent / "masks"
                                      / f"{img.stem}_lung.png")) > 0
        inter = ((mask > 0) & truth).sum()
        assert 2 * inter / ((mask > 0).sum() + truth.sum()) > 0.8
        assert (out / f"{img.stem}_lung_overlay.png").is_file()
    rows = list(csv.DictReader((out / "segment.csv").open()))
    assert len(rows) == 4 and {r["quality"] for r in rows} <= {"ok", "check image"}


def test_evaluate_seg_reports_dice_iou_hd95(tiny_seg_model: Path, synthetic_masks: Path,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    assert main(["-q", "evaluate-seg", "--checkpoint", str(tiny_seg_model), "--data",
                 str(synthetic_masks), "--split", "val", "-o", str(out),
                 "--n-boot", "200"]) == 0
    text = capsys.readouterr().out
    assert "DICE" in text and "HD95" in text and "95% CI" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dice"]["mean"] > 0.85 and summary["n"] == len(
        list(csv.DictReader((out / "per_image.csv").open())))
    # the same masks written by `segment` score the same through --predictions
    masks = tmp_path / "pred"
    val = [r["image"] for r in csv.DictReader(synthetic_masks.open()) if r["split"] == "val"]
    main(["-q", "segment", "--checkpoint", str(tiny_seg_model), "--no-overlay", "-o",
          str(masks), *[str(synthetic_masks.parent / v) for v in val]])
    assert main(["-q", "evaluate-seg", "--predictions", str(masks), "--data",
                 str(synthetic_masks), "--split", "val", "-o", str(tmp_path / "e2")]) == 0
    again = json.loads((tmp_path / "e2" / "summary.json").read_text())
    assert again["dice"]["mean"] == pytest.approx(summary["dice"]["mean"], abs=1e-9)


def test_user_mistakes(tiny_seg_model: Path, tiny_model: Path, synthetic_masks: Path,
                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    no_mask = tmp_path / "t.csv"
    no_mask.write_text("image,patient_id\nimages/a.png,P1\n")
    assert main(["-q", "train-seg", "--data", str(no_mask), "-o", str(tmp_path / "r")]) != 0
    assert "no 'mask' column" in capsys.readouterr().err
    img = next((synthetic_masks.parent / "images").glob("*.png"))
    assert main(["-q", "segment", "--checkpoint", str(tiny_model), str(img), "-o",
                 str(tmp_path / "o")]) != 0
    assert "is a classifier" in capsys.readouterr().err
    assert main(["-q", "segment", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o")]) != 0
    assert "no such file" in capsys.readouterr().err
    assert main(["-q", "evaluate-seg", "--checkpoint", str(tiny_seg_model), "--data",
                 str(synthetic_masks), "--split", "test"]) != 0
    assert "no row with a mask has split 'test'" in capsys.readouterr().err


def test_explain_writes_heatmaps_and_heat_in_lungs(tiny_model: Path, tiny_seg_model: Path,
                                                   synthetic_masks: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    images = sorted((synthetic_masks.parent / "images").glob("*.png"))[:2]
    out = tmp_path / "heat"
    assert main(["-q", "explain", "--checkpoint", str(tiny_model), "--lung-model",
                 str(tiny_seg_model), *map(str, images), "-o", str(out)]) == 0
    for img in images:
        heat = np.asarray(Image.open(out / f"{img.stem}_pneumonia_heat.png"))
        assert heat.shape == np.asarray(Image.open(img)).shape and heat.dtype == np.uint8
        assert heat.max() == 255
        assert np.asarray(Image.open(out / f"{img.stem}_pneumonia_overlay.png")).shape[-1] == 3
    rows = list(csv.DictReader((out / "explain.csv").open()))
    assert all(0.0 <= float(r["heat_in_lungs"]) <= 1.0 for r in rows)
    assert "never replace" in capsys.readouterr().out
    assert main(["-q", "explain", "--checkpoint", str(tiny_model), "--label", "effusion",
                 str(images[0]), "-o", str(out)]) != 0
    assert "not one of the model's" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cropped_run(tiny_seg_model: Path, synthetic_masks: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crop") / "run"
    assert main(["-q", "train", "--data", str(synthetic_masks), "--model", "small-vgg",
                 "--image-size", "64", "--epochs", "1", "--batch-size", "16", "--device",
                 "cpu", "--crop", "lungs", "--outside-lungs", "dim", "--lung-model",
                 str(tiny_seg_model), "--attention-penalty", "0.5", "--shortcut-augment",
                 "-o", str(out)]) == 0
    return out


def test_lung_crop_is_recorded_and_training_matches_inference(
        cropped_run: Path, synthetic_masks: Path, tiny_seg_model: Path) -> None:
    from radiolens.data.datalist import make_item
    from radiolens.data.dataset import LungPreparation, XrayDataset, load_images
    from radiolens.inference import Predictor
    from radiolens.segment import LungSegmenter

    pre = json.loads((cropped_run / "model.json").read_text())["preprocessing"]
    assert pre["crop"] == "lungs" and pre["outside_lungs"] == "dim"
    assert pre["lung_model"] == str(tiny_seg_model)
    predictor = Predictor(cropped_run).load()
    assert predictor.uses_lungs
    image = str(next((synthetic_masks.parent / "images").glob("*.png")))
    seg = LungSegmenter(tiny_seg_model).load()
    loaded = load_images([make_item(image, [1.0], patient_id="P")], 64,
                         lungs=LungPreparation(seg, crop=True, dim=pre["dim_factor"]))
    training_input = XrayDataset(loaded, pre["mean"], pre["std"])[0]["image"].numpy()
    from radiolens.imaging import read_image

    inference_input = predictor.preprocess(read_image(image))
    np.testing.assert_allclose(training_input, inference_input, atol=2e-3)  # float16 cache
    heat = predictor.explain(read_image(image).pixels)
    mask = seg.segment(read_image(image).pixels).mask
    from radiolens.segment import lung_box

    box = lung_box(mask)
    outside_box = np.ones_like(mask)
    outside_box[box.top:box.bottom, box.left:box.right] = False
    assert heat.shape == mask.shape and heat[outside_box].max() == 0.0


def test_a_cropping_model_segments_each_batch_once_and_scores_as_one_by_one(
        cropped_run: Path, synthetic_masks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens.archive.scoring import LocalScorer
    from radiolens.imaging import read_image
    from radiolens.inference import Predictor
    from radiolens.segment import LungSegmenter

    files = sorted((synthetic_masks.parent / "images").glob("*.png"))[:7]
    predictor = Predictor(cropped_run, batch_size=4).load()
    alone = [predictor.predict_batch(predictor.preprocess(read_image(f))[None])[0]
             for f in files]
    calls: list[int] = []
    real = LungSegmenter.segment_many

    def counted(self: LungSegmenter, images: list[np.ndarray]) -> list[object]:
        calls.append(len(images))
        return real(self, images)

    monkeypatch.setattr(LungSegmenter, "segment_many", counted)
    by_file = [p.prediction for p in predictor.iter_files(files)]
    assert calls == [4, 3]  # one segmentation per batch of 4
    calls.clear()
    in_memory = predictor.predict([read_image(f) for f in files])
    assert calls == [4, 3]
    calls.clear()
    chunks = list(LocalScorer(predictor, chunk_size=7, hashing=False).score(
        [(str(f), "") for f in files] + [("missing.png", "")]))
    assert calls == [7]
    scores = [s for c in chunks for s in c.scores]
    assert scores[-1].error and "missing.png" in scores[-1].error
    for j, expected in enumerate(alone):
        assert by_file[j] is not None and in_memory[j] is not None
        for got in (by_file[j].probabilities["pneumonia"],
                    in_memory[j].probabilities["pneumonia"],
                    scores[j].probabilities[0]):  # type: ignore[index]
            assert got == pytest.approx(float(expected[0]), abs=1e-5)


def test_uncropped_training_matches_inference(tmp_path: Path, synthetic_masks: Path,
                                              tiny_model: Path) -> None:
    from radiolens.data.datalist import make_item
    from radiolens.data.dataset import XrayDataset, load_images
    from radiolens.imaging import read_image
    from radiolens.inference import Predictor

    image = str(next((synthetic_masks.parent / "images").glob("*.png")))
    predictor = Predictor(tiny_model).load()
    loaded = load_images([make_item(image, [1.0], patient_id="P")], 64)
    np.testing.assert_allclose(XrayDataset(loaded, 0.5, 0.25)[0]["image"].numpy(),
                               predictor.preprocess(read_image(image)), atol=2e-3)


def test_evaluate_reports_heat_in_lungs(tiny_model: Path, tiny_seg_model: Path,
                                        synthetic_masks: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ev"
    assert main(["-q", "evaluate", "--checkpoint", str(tiny_model), "--data",
                 str(synthetic_masks), "--split", "val", "--n-boot", "100", "--device", "cpu",
                 "-o", str(out)]) == 0
    assert "heat in lungs" in capsys.readouterr().out
    heat = json.loads((out / "metrics.json").read_text())["heat_in_lungs"]
    assert heat["masks"] == "reference" and 0.1 < heat["uniform"] < 0.5
    rec = heat["labels"]["pneumonia"]
    assert rec["n"] == heat["n"] > 0 and 0.0 <= rec["mean"] <= 1.0
    out2 = tmp_path / "ev2"
    assert main(["-q", "evaluate", "--checkpoint", str(tiny_model), "--data",
                 str(synthetic_masks), "--split", "val", "--n-boot", "100", "--device", "cpu",
                 "--lung-masks", "predicted", "--lung-model", str(tiny_seg_model),
                 "-o", str(out2)]) == 0
    pred = json.loads((out2 / "metrics.json").read_text())["heat_in_lungs"]
    assert pred["masks"] == "predicted"
    assert abs(pred["labels"]["pneumonia"]["mean"] - rec["mean"]) < 0.1
    assert main(["-q", "evaluate", "--checkpoint", str(tiny_model), "--data",
                 str(synthetic_masks), "--split", "val", "--lung-masks", "none", "-o",
                 str(tmp_path / "ev3")]) == 0
    assert "heat_in_lungs" not in json.loads((tmp_path / "ev3" / "metrics.json").read_text())
