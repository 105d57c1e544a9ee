"""The synthetic data set: shape of the table, determinism, and a learnable signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radiolens.data import check_no_leak, make_synthetic_dataset, read_label_table
from radiolens.errors import ConfigError


def test_table_and_images(tmp_path: Path) -> None:
    csv_path = make_synthetic_dataset(tmp_path / "syn", n=24, image_size=32, seed=3)
    assert csv_path == tmp_path / "syn" / "labels.csv"
    header = csv_path.read_text().splitlines()[0]
    assert header == "image,patient_id,pneumonia,split,sex,age,view"
    dl = read_label_table(csv_path, "pneumonia")
    s = dl.summary()
    assert s["n_images"] == 24 and s["n_patients"] == 12
    assert s["labels"]["pneumonia"] == {"positive": 12, "negative": 12, "missing": 0}
    assert set(s["splits"]) == {"train", "val"}
    train, val = dl.subset("train"), dl.subset("val")
    check_no_leak(train, val)
    for part in (train, val):
        assert {float(i["label"][0]) for i in part} == {0.0, 1.0}
    img = Image.open(dl.items[0]["image"])
    assert img.mode == "L" and img.size == (32, 32)


def test_deterministic(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a", n=8, seed=1)
    b = make_synthetic_dataset(tmp_path / "b", n=8, seed=1)
    c = make_synthetic_dataset(tmp_path / "c", n=8, seed=2)
    assert a.read_text() == b.read_text()
    png = "images/syn_00003.png"
    assert (a.parent / png).read_bytes() == (b.parent / png).read_bytes()
    assert (a.parent / png).read_bytes() != (c.parent / png).read_bytes()


def test_signal_is_visible(tmp_path: Path) -> None:
    """Positives are brighter in the lower-left lung zone: a one-number classifier works."""
    dl = read_label_table(make_synthetic_dataset(tmp_path, n=64, seed=0), "pneumonia")
    score, label = [], []
    for item in dl:
        pixels = np.asarray(Image.open(item["image"]), dtype=np.float64)
        score.append(pixels[30:45, 14:28].mean())   # around (0.33, 0.58) of 64 px
        label.append(item["label"][0])
    s, y = np.array(score), np.array(label)
    auc = np.mean([a > b for a in s[y == 1] for b in s[y == 0]])
    assert auc > 0.9


def test_multi_label_and_patients(tmp_path: Path) -> None:
    csv_path = make_synthetic_dataset(tmp_path, n=30, labels=("pneumonia", "Effusion"),
                                      n_patients=30)
    dl = read_label_table(csv_path, "pneumonia,Effusion")
    assert dl.labels == ["pneumonia", "Effusion"] and len(dl.patients) == 30


@pytest.mark.parametrize(
    "kwargs",
    [{"n": 1}, {"image_size": 8}, {"labels": ()}, {"labels": ("a", "a")},
     {"labels": ("split",)}, {"n_patients": 0}],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make_synthetic_dataset(tmp_path, **kwargs)  # type: ignore[arg-type]
