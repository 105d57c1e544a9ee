"""The CI smoke run: train one tiny model on generated images, evaluate it, predict with it.

Assertions are on file formats and metric sanity, never on speed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from radiolens.cli.main import main
from radiolens.data.synthetic import make_synthetic_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), n=64, image_size=64,
                                  seed=0)


@pytest.fixture(scope="module")
def run_dir(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "smoke"
    code = main(["-q", "train", "--data", str(dataset), "--labels", "pneumonia", "--model",
                 "small-vgg", "--image-size", "64", "--epochs", "2", "--batch-size", "16",
                 "--lr", "3e-3", "--device", "cpu", "-o", str(out)])
    assert code == 0
    return out


def test_run_directory_contents(run_dir: Path) -> None:
    for name in ("model.safetensors", "model.json", "config.yaml", "history.csv",
                 "val_predictions.csv", "state/state.json", "state/state.safetensors",
                 "learning_curve.png"):
        assert (run_dir / name).is_file(), name
    info = json.loads((run_dir / "model.json").read_text())
    assert info["format"] == "radiolens-model" and info["labels"] == ["pneumonia"]
    assert info["preprocessing"]["image_size"] == 64
    assert 0.0 <= info["thresholds"]["pneumonia"] <= 1.0
    assert info["training"]["train"]["images"] > 0
    rec = info["validation"]["labels"]["pneumonia"]
    assert 0.0 <= rec["auroc"] <= 1.0 and rec["auroc_ci"][0] <= rec["auroc_ci"][1]
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(float(r["train_loss"]) > 0 for r in rows)
    assert not list(run_dir.rglob("*.pt*")), "no pickled files in a run directory"
    from radiolens.devices import cpu_has_native_bf16

    # bf16 autocast is on by default exactly where this CPU computes bf16 natively
    expected = "bf16 autocast" if cpu_has_native_bf16() else "fp32"
    assert info["training"]["precision"] == expected


def test_no_amp_trains_in_fp32(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "fp32"
    assert main(["-q", "train", "--data", str(dataset), "--labels", "pneumonia", "--model",
                 "small-vgg", "--image-size", "32", "--epochs", "1", "--limit", "16",
                 "--device", "cpu", "--no-amp", "-o", str(out)]) == 0
    assert json.loads((out / "model.json").read_text())["training"]["precision"] == "fp32"


def test_weight_average_follows_the_weights_with_its_decay() -> None:
    import torch

    from radiolens.train.loop import _WeightAverage

    net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(0.0)
    average = _WeightAverage(net, decay=0.5)
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[1].num_batches_tracked.fill_(7)
    average.update()  # first update: decay min(0.5, 2/11) -> mostly the new weights
    first = average.model[0].weight[0, 0].item()
    assert first == pytest.approx(1.0 - 2.0 / 11.0)
    average.update()  # then at most 0.5 of the old value is kept
    assert average.model[0].weight[0, 0].item() == pytest.approx(1.0 - (1.0 - first) * 3 / 12)
    assert int(average.model[1].num_batches_tracked) == 7  # integer buffers are copied
    assert net[0].weight[0, 0].item() == 1.0  # the trained model is untouched
    assert not any(p.requires_grad for p in average.model.parameters())


def test_ema_run_saves_the_average_and_resumes(dataset: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "ema"
    args = ["-q", "train", "--data", str(dataset), "--model", "small-vgg", "--image-size",
            "32", "--batch-size", "16", "--device", "cpu", "--ema", "0.9", "-o", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    state = load_file(str(out / "state" / "state.safetensors"))
    saved = load_file(str(out / "model.safetensors"))
    # the saved model is the average, not the last weights
    key = next(k for k in saved if k.endswith("weight") and saved[k].ndim > 1)
    assert saved[key].float().allclose(state[f"ema.{key}"].float(), atol=1e-3)
    assert not state[f"model.{key}"].allclose(state[f"ema.{key}"])
    assert json.loads((out / "state" / "state.json").read_text())["extra"]["ema_updates"] > 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    info = json.loads((out / "model.json").read_text())
    assert info["training"]["config"]["ema"] == 0.9


def test_existing_run_needs_resume(run_dir: Path, dataset: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data", str(dataset), "--model", "small-vgg", "--image-size",
                 "64", "--epochs", "1", "-o", str(run_dir)])
    assert code == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_continues_history(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumable"
    args = ["-q", "train", "--data", str(dataset), "--model", "small-vgg", "--image-size",
            "64", "--batch-size", "16", "--device", "cpu", "-o", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    assert main([*args, "--epochs", "2", "--resume"]) == 0
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_evaluate_writes_metrics_plots_report(run_dir: Path, dataset: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "eval"
    code = main(["-q", "evaluate", "--checkpoint", str(run_dir), "--data", str(dataset),
                 "--split", "val", "--n-boot", "50", "--device", "cpu", "-o", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    rec = metrics["labels"]["pneumonia"]
    for key in ("auroc", "auroc_ci", "auprc", "accuracy", "sensitivity", "specificity", "ppv",
                "npv", "f1", "confusion", "calibration"):
        assert key in rec
    c = rec["confusion"]
    assert c["tp"] + c["fp"] + c["tn"] + c["fn"] == rec["n"]
    assert rec["threshold"] == pytest.approx(
        json.loads((run_dir / "model.json").read_text())["thresholds"]["pneumonia"])
    report = (out / "report.html").read_text()
    assert report.count("<img") >= 4 and "learning curve" in report
    assert "cases of the &#x27;val&#x27; split" in report and "test cases" not in report
    assert "chosen on these same cases" in report  # the thresholds came from this split
    assert list(out.glob("roc_*.png")) and list(out.glob("confusion_*.png"))


def test_evaluate_refuses_missing_test_split(run_dir: Path, dataset: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--checkpoint", str(run_dir), "--data", str(dataset),
                 "-o", str(tmp_path / "e")])
    assert code == 2
    assert "--split" in capsys.readouterr().err


def test_compare_two_evaluations(run_dir: Path, dataset: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        assert main(["-q", "evaluate", "--checkpoint", str(run_dir), "--data", str(dataset),
                     "--split", "val", "--n-boot", "20", "-o", str(tmp_path / name)]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "pneumonia" in out and "a" in out and "b" in out


def test_predict_csv_and_json(run_dir: Path, dataset: Path, tmp_path: Path) -> None:
    images = sorted((dataset.parent).rglob("*.png"))[:5]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out_csv = tmp_path / "p.csv"
    code = main(["-q", "predict", "--checkpoint", str(run_dir), *map(str, images), str(bad),
                 "-o", str(out_csv)])
    assert code == 1  # one file could not be read; it is listed, not dropped
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 6
    good = [r for r in rows if not r["error"]]
    assert len(good) == 5
    assert all(0.0 <= float(r["pneumonia_prob"]) <= 1.0 for r in good)
    assert all(r["pneumonia_call"] in ("0", "1") for r in good)
    assert "broken.png" in next(r for r in rows if r["error"])["path"]
    out_json = tmp_path / "p.json"
    assert main(["-q", "predict", "--checkpoint", str(run_dir), str(images[0].parent),
                 "-o", str(out_json)]) == 0
    doc = json.loads(out_json.read_text())
    assert "radiologist" in doc["disclaimer"]
    assert doc["predictions"] and "probabilities" in doc["predictions"][0]


def test_thresholds_writes_a_copy_with_the_new_operating_point(
        run_dir: Path, dataset: Path, tmp_path: Path) -> None:
    before = (run_dir / "model.json").read_text()
    out = tmp_path / "rethresholded"
    assert main(["-q", "thresholds", "--checkpoint", str(run_dir), "--data", str(dataset),
                 "--method", "sensitivity:1.0", "--n-boot", "20", "--device", "cpu",
                 "-o", str(out)]) == 0
    assert (run_dir / "model.json").read_text() == before  # the source is untouched
    assert (out / "model.safetensors").read_bytes() == \
        (run_dir / "model.safetensors").read_bytes()
    info = json.loads((out / "model.json").read_text())
    assert info["threshold_method"].startswith(
        "sensitivity:1.0 on validation data: split 'val'")
    assert info["validation"]["labels"]["pneumonia"]["sensitivity"] == 1.0
    # the path a user takes afterwards scores the same split to the same operating point
    assert main(["-q", "evaluate", "--checkpoint", str(out), "--data", str(dataset),
                 "--split", "val", "--n-boot", "20", "--device", "cpu",
                 "-o", str(tmp_path / "e")]) == 0
    rec = json.loads((tmp_path / "e" / "metrics.json").read_text())["labels"]["pneumonia"]
    assert rec["sensitivity"] == 1.0
    assert rec["threshold"] == pytest.approx(info["thresholds"]["pneumonia"])


def test_thresholds_in_place_updates_model_json(run_dir: Path, dataset: Path,
                                                tmp_path: Path) -> None:
    import shutil

    own = tmp_path / "own"
    shutil.copytree(run_dir, own)
    assert main(["-q", "thresholds", "--checkpoint", str(own), "--data", str(dataset),
                 "--method", "fixed:0.25", "--n-boot", "20", "--device", "cpu"]) == 0
    info = json.loads((own / "model.json").read_text())
    assert info["thresholds"] == {"pneumonia": 0.25}
    assert info["validation"]["labels"]["pneumonia"]["threshold"] == 0.25


@pytest.mark.parametrize(("extra", "message"), [
    (["--checkpoint", "builtin:pneumonia-kermany"], "read-only"),
    (["--checkpoint", "RUN", "--method", "youdn"], "did you mean 'youden'"),
    (["--checkpoint", "RUN", "--split", "nope"], "no rows in split 'nope'"),
])
def test_thresholds_user_mistakes(run_dir: Path, dataset: Path, extra: list[str],
                                  message: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(run_dir) if a == "RUN" else a for a in extra]
    assert main(["thresholds", "--data", str(dataset), *args]) == 2
    assert message in capsys.readouterr().err
    assert not list(run_dir.glob(".model.json.*"))


def test_training_log_without_a_terminal(dataset: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "logged"
    assert main(["train", "--data", str(dataset), "--model", "small-vgg", "--image-size",
                 "64", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "epoch 1/1: batch 1/" in err  # progress within the epoch, no bar on a pipe
    assert err.count("epoch 1/1: train loss") == 1
    assert err.count("bootstrap:") <= 1


def test_resume_of_a_finished_run_says_it_is_complete(
        run_dir: Path, dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data", str(dataset), "--model", "small-vgg", "--image-size",
                 "64", "--epochs", "2", "--device", "cpu", "-o", str(run_dir), "--resume"])
    assert code == 2
    err = capsys.readouterr().err
    assert "already complete (2 of 2 epochs)" in err and "images/s" not in err


def test_evaluate_skip_missing(run_dir: Path, dataset: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "labels.csv"
    text = dataset.read_text()
    header = text.splitlines()[0].split(",")
    row = {"image": "images/gone.png", "patient_id": "gone", "pneumonia": "1",
           "split": "val"}
    table.write_text(text + ",".join(row.get(c, "") for c in header) + "\n")
    args = ["evaluate", "--checkpoint", str(run_dir), "--data", str(table), "--images-root",
            str(dataset.parent), "--split", "val", "--n-boot", "20", "--device", "cpu",
            "-o", str(tmp_path / "e")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "gone.png" in err and "--skip-missing" in err and "on_missing=" not in err.split(
        "--skip-missing")[0]
    assert main(["-q", *args, "--skip-missing"]) == 0
