"""Patient-level splits: stability, no leaks, the table's own split, and leak detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radiolens.data import (
    Datalist,
    check_no_leak,
    make_item,
    patient_fraction,
    read_label_table,
    split_by_patient,
)
from radiolens.errors import ConfigError, DatasetError, SplitLeakError


def _datalist(n_patients: int = 400, per_patient: int = 3, split: str = "") -> Datalist:
    items = [
        make_item(f"/img/p{p}_{k}.png", [float(k % 2)], patient_id=f"P{p}", split=split)
        for p in range(n_patients) for k in range(per_patient)
    ]
    return Datalist(items=items, labels=["pneumonia"], source="test")


def _ids(dl: Datalist) -> list[str]:
    return [i["image"] for i in dl]


def test_stable_and_seeded() -> None:
    dl = _datalist()
    train1, val1 = split_by_patient(dl, 0.2, seed=0)
    train2, val2 = split_by_patient(dl, 0.2, seed=0)
    assert _ids(train1) == _ids(train2) and _ids(val1) == _ids(val2)
    _, val3 = split_by_patient(dl, 0.2, seed=1)
    assert _ids(val3) != _ids(val1)
    assert not train1.patients & val1.patients
    assert len(train1) + len(val1) == len(dl)
    assert 0.14 < len(val1.patients) / len(dl.patients) < 0.26
    check_no_leak(train1, val1)


def test_hash_is_fixed_across_machines() -> None:
    # SHA-256 based: this value must never change (it would silently reshuffle splits).
    assert patient_fraction("P1", 0) == pytest.approx(patient_fraction("P1", 0))
    assert 0.0 <= patient_fraction("P1", 0) < 1.0
    assert patient_fraction("P1", 0) != patient_fraction("P1", 1)
    assert f"{patient_fraction('patient00001', 42):.12f}" == EXPECTED_FRACTION


EXPECTED_FRACTION = "0.010821075472"


def test_existing_split_is_used() -> None:
    dl = Datalist(items=[*_datalist(5, split="train").items,
                         *[make_item("/v.png", [1.0], patient_id="V", split="val"),
                           make_item("/t.png", [1.0], patient_id="T", split="test")]],
                  labels=["pneumonia"])
    train, val = split_by_patient(dl, 0.5, seed=0)
    assert _ids(val) == ["/v.png"] and len(train) == 15
    train_all, val_all = split_by_patient(dl, 0.5, seed=0, use_existing=False)
    assert len(train_all) + len(val_all) == 16  # the test image stays out


def test_existing_split_leak_raises() -> None:
    items = [make_item("/a.png", [1.0], patient_id="P1", split="train"),
             make_item("/b.png", [0.0], patient_id="P1", split="val"),
             make_item("/c.png", [0.0], patient_id="P2", split="train")]
    with pytest.raises(SplitLeakError, match=r"1 patients.*'P1' \(train & val\)"):
        split_by_patient(Datalist(items=items, labels=["pneumonia"]), 0.1, seed=0)


def test_check_no_leak_names_at_most_five() -> None:
    a = _datalist(8, 1, split="train")
    b = _datalist(8, 1, split="val")
    with pytest.raises(SplitLeakError) as info:
        check_no_leak(a, b)
    message = str(info.value)
    assert "8 patients" in message and "and 3 more" in message and "'P0'" in message
    assert isinstance(info.value, DatasetError)


def test_bad_fraction() -> None:
    with pytest.raises(ConfigError, match="val_fraction"):
        split_by_patient(_datalist(3), 1.5, seed=0)


def _kermany_like_table(folder: Path) -> Path:
    """A table shaped like the shared data's labels.csv: two sources, patients with several
    images, a split column hashed by patient, blank labels in the other source."""
    from .conftest import write_png

    rows = ["image,source,patient_id,pneumonia,split"]
    for p in range(30):
        for k in range(1 + p % 3):
            image = f"kermany/p{p}_{k}.png"
            write_png(folder / image)
            rows.append(f"{image},kermany_pneumonia,K{p},{(p + k) % 2},"
                        f"{'val' if p % 10 == 0 else 'train'}")
    for p in range(5):
        write_png(folder / f"nih/n{p}.png")
        rows.append(f"nih/n{p}.png,nih_chestxray14_64px,N{p},,train")
    path = folder / "labels.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_table_split_by_source_and_patient(tmp_path: Path) -> None:
    dl = read_label_table(_kermany_like_table(tmp_path), "pneumonia",
                          where={"source": "kermany_pneumonia"})
    n = sum(1 + p % 3 for p in range(30))
    assert len(dl) == n and len(dl.patients) == 30
    s = dl.summary()["labels"]["pneumonia"]
    assert s["positive"] + s["negative"] == n and s["missing"] == 0
    assert set(dl.splits) == {"train", "val"}
    check_no_leak(dl.subset("train"), dl.subset("val"))
    train, val = split_by_patient(dl, 0.1, seed=0)
    assert len(train) + len(val) == n and not train.patients & val.patients
    assert np.isfinite(dl.label_matrix()).all()
