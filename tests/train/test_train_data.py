"""From a training configuration to train and validation datalists: limits, minimum
validation size, missing files and label-name messages (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiolens.cli.main import main
from radiolens.data.synthetic import make_synthetic_dataset
from radiolens.errors import DatasetError
from radiolens.train import TrainConfig
from radiolens.train.data import MIN_VALIDATION_IMAGES, load_training_data


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("syn"), n=80, image_size=16)


def _config(dataset: Path, **kw: object) -> TrainConfig:
    return TrainConfig(data=str(dataset), output="unused", **kw)  # type: ignore[arg-type]


def test_limit_shrinks_training_only(dataset: Path) -> None:
    full_train, full_val = load_training_data(_config(dataset))
    train, val = load_training_data(_config(dataset, limit=20))
    assert len(train) == 20 and len(val) == len(full_val) and len(full_train) > 20
    _, val = load_training_data(_config(dataset, limit=20, limit_val=MIN_VALIDATION_IMAGES))
    assert len(val) == MIN_VALIDATION_IMAGES


def test_too_few_validation_images_are_refused(dataset: Path) -> None:
    with pytest.raises(DatasetError, match=f"at least {MIN_VALIDATION_IMAGES} are needed"):
        load_training_data(_config(dataset, limit_val=3))


def test_skip_missing_drops_rows_whose_image_is_gone(tmp_path: Path) -> None:
    table = make_synthetic_dataset(tmp_path / "syn", n=80, image_size=16)
    next((tmp_path / "syn" / "images").glob("*.png")).unlink()
    with pytest.raises(DatasetError, match="--skip-missing"):
        load_training_data(_config(table))
    train, val = load_training_data(_config(table, skip_missing=True))
    assert len(train) + len(val) == 79


def test_train_names_the_default_labels(dataset: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "t.csv"
    table.write_text(dataset.read_text().replace("pneumonia", "Pneumonia"))
    args = ["train", "--data", str(table), "--images-root", str(dataset.parent),
            "-o", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "did you mean 'Pneumonia'" in err and "the default --labels pneumonia" in err
    assert "did you mean 'pneumonia'" not in err and "available columns:" in err
    assert main([*args, "--labels", "Pnemonia"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'Pneumonia'" in err and "comes from --labels Pnemonia" in err


def test_help_says_what_limit_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "at most N training images (validation keeps all its images)" in out
    assert "--limit-val" in out and "--skip-missing" in out
