"""Data set layouts: Kermany class folders, NIH ChestX-ray14, CheXpert, report labels."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from radiolens.data import (
    CHEXPERT_OBSERVATIONS,
    kermany_patient_id,
    read_chexpert,
    read_class_folders,
    read_nih,
    read_report_labels,
)
from radiolens.errors import DatasetError

from .conftest import write_csv, write_png


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person1_bacteria_1.jpeg", "person1"),
        ("person1_virus_6.jpeg", "person1"),
        ("person1440_bacteria_3678.jpeg", "person1440"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("IM-0429-0001-0002.jpeg", "IM-0429"),
        ("NORMAL2-IM-1427-0001.jpeg", "NORMAL2-IM-1427"),
        ("whatever.png", "whatever"),
    ],
)
def test_kermany_patient_id(name: str, patient: str) -> None:
    assert kermany_patient_id(name) == patient


def test_class_folders_with_splits(tmp_path: Path) -> None:
    for split in ("train", "test"):
        write_png(tmp_path / split / "NORMAL" / "IM-0001-0001.jpeg")
        write_png(tmp_path / split / "PNEUMONIA" / "person3_virus_7.jpeg")
        write_png(tmp_path / split / "PNEUMONIA" / "person3_bacteria_8.jpeg")
    (tmp_path / "train" / "NORMAL" / "notes.txt").write_text("skip me")
    dl = read_class_folders(tmp_path)
    assert dl.labels == ["pneumonia"] and len(dl) == 6
    assert dl.splits == {"test": 3, "train": 3}
    by_name = {Path(i["image"]).name + i["split"]: i for i in dl}
    assert by_name["IM-0001-0001.jpegtrain"]["label"].tolist() == [0.0]
    assert by_name["person3_virus_7.jpegtest"]["label"].tolist() == [1.0]
    assert by_name["person3_virus_7.jpegtest"]["patient_id"] == "person3"
    assert by_name["IM-0001-0001.jpegtrain"]["id"] == "train/NORMAL/IM-0001-0001.jpeg"


def test_class_folders_without_splits(tmp_path: Path) -> None:
    write_png(tmp_path / "normal" / "a.png")
    write_png(tmp_path / "Pneumonia" / "b.png")
    write_png(tmp_path / "covid" / "c.png")
    dl = read_class_folders(tmp_path, positive="pneumonia", negative="normal")
    assert len(dl) == 2 and dl.splits == {"": 2}
    assert len(read_class_folders(tmp_path, positive="pneumonia")) == 3
    assert read_class_folders(tmp_path, positive="COVID", label="covid19").labels == ["covid19"]


def test_class_folders_unknown_positive(tmp_path: Path) -> None:
    write_png(tmp_path / "NORMAL" / "a.png")
    write_png(tmp_path / "PNEUMONIA" / "b.png")
    with pytest.raises(DatasetError, match="did you mean 'PNEUMONIA'"):
        read_class_folders(tmp_path, positive="PNEUMONA")
    with pytest.raises(DatasetError, match="not found"):
        read_class_folders(tmp_path / "missing")


NIH = """
Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position
00000001_000.png,Cardiomegaly,0,1,58,M,PA
00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA
00000002_000.png,No Finding,0,2,081Y,F,AP
00000003_000.png,Effusion|Pneumonia,0,3,30,F,PA
"""


def test_nih(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "Data_Entry_2017.csv", NIH)
    # NIH ships images in sub-folders; one image sits directly under the root.
    for name in ("00000001_000.png", "00000001_001.png", "00000002_000.png"):
        write_png(tmp_path / "images_001" / "images" / name)
    write_png(tmp_path / "00000003_000.png")
    write_csv(tmp_path / "lists" / "train_val_list.txt", "00000001_000.png\n00000001_001.png")
    write_csv(tmp_path / "lists" / "test_list.txt", "00000002_000.png")
    dl = read_nih(csv_path, tmp_path, split_lists_dir=tmp_path / "lists")
    assert len(dl.labels) == 14 and len(dl) == 4
    col = {n: dl.labels.index(n) for n in ("Cardiomegaly", "Emphysema", "Effusion",
                                           "Pneumonia")}
    first, second, normal, third = dl.items
    assert first["label"][col["Cardiomegaly"]] == 1 and first["label"].sum() == 1
    assert second["label"][col["Emphysema"]] == 1 and second["label"].sum() == 2
    assert normal["label"].sum() == 0 and not np.isnan(normal["label"]).any()
    assert third["label"][col["Pneumonia"]] == 1 and third["label"][col["Effusion"]] == 1
    assert [i["split"] for i in dl] == ["train", "train", "test", ""]
    assert (first["patient_id"], first["sex"], first["age"], first["view"]) == ("1", "M", "58",
                                                                                 "PA")
    assert normal["age"] == "81"
    assert Path(first["image"]).is_file()
    sub = read_nih(csv_path, tmp_path, labels="Pneumonia,Effusion")
    assert sub.labels == ["Pneumonia", "Effusion"]


def test_nih_unknown_finding(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "d.csv", NIH.replace("Emphysema", "Emphysma"))
    with pytest.raises(DatasetError, match=r"d\.csv:3: unknown finding 'Emphysma'"):
        read_nih(csv_path, tmp_path)


CHEXPERT_HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_OBSERVATIONS)


def _chexpert_row(path: str, sex: str, frontal: str, appa: str, values: dict[str, str]) -> str:
    return ",".join([path, sex, "68", frontal, appa,
                     *(values.get(o, "") for o in CHEXPERT_OBSERVATIONS)])


def test_chexpert(tmp_path: Path) -> None:
    rows = [
        _chexpert_row("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg",
                      "Female", "Frontal", "AP", {"Pneumonia": "1.0", "Edema": "-1.0"}),
        _chexpert_row("CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg",
                      "Female", "Lateral", "", {"Pneumonia": "0.0"}),
        _chexpert_row("CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg",
                      "Male", "Frontal", "PA", {"No Finding": "1.0"}),
    ]
    csv_path = write_csv(tmp_path / "train.csv", "\n".join([CHEXPERT_HEADER, *rows]))
    for row in rows:
        write_png(tmp_path / row.split(",")[0])
    dl = read_chexpert(csv_path, tmp_path)
    assert dl.labels == list(CHEXPERT_OBSERVATIONS) and len(dl) == 3
    first, lateral, valid = dl.items
    pneu, edema = dl.labels.index("Pneumonia"), dl.labels.index("Edema")
    assert first["label"][pneu] == 1 and np.isnan(first["label"][edema])
    assert np.isnan(first["label"][dl.labels.index("Fracture")])
    assert (first["patient_id"], first["sex"], first["age"], first["view"], first["split"]) == (
        "patient00001", "F", "68", "AP", "train")
    assert lateral["view"] == "LATERAL" and valid["split"] == "val"
    ones = read_chexpert(csv_path, tmp_path, uncertain="ones", labels="Edema,Pneumonia")
    assert ones.items[0]["label"].tolist() == [1.0, 1.0]
    # The release folder itself as the root, and frontal images only.
    inner = read_chexpert(csv_path, tmp_path / "CheXpert-v1.0-small", frontal_only=True)
    assert len(inner) == 2


def test_chexpert_bad_value(tmp_path: Path) -> None:
    row = _chexpert_row("x/train/patient1/s/v.jpg", "Male", "Frontal", "AP",
                        {"Edema": "maybe"})
    csv_path = write_csv(tmp_path / "c.csv", CHEXPERT_HEADER + "\n" + row)
    with pytest.raises(DatasetError, match=r"c\.csv:2: column 'Edema' has value 'maybe'"):
        read_chexpert(csv_path, tmp_path)


def test_report_labels_join(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reports = write_csv(tmp_path / "report_labels.csv", """
        id,Effusion,Pneumonia,No Finding
        r1,1,,
        r2,0,-1,
        r3,,,1
        r9,1,1,
    """)
    images = write_csv(tmp_path / "images.csv", """
        id,image,patient_id,split
        r1,img/r1_pa.png,P1,train
        r1,img/r1_lat.png,P1,train
        r2,img/r2.png,P2,val
        r3,img/r3.png,P3,
        r5,img/r5.png,P5,
    """)
    for name in ("r1_pa", "r1_lat", "r2", "r3", "r5"):
        write_png(tmp_path / "img" / f"{name}.png")
    with caplog.at_level(logging.WARNING, logger="radiolens.data.readers"):
        dl = read_report_labels(reports, images, labels="Effusion,Pneumonia")
    assert dl.labels == ["Effusion", "Pneumonia"]
    # r3 has both selected labels blank: dropped; r5 has no report.
    assert [i["id"] for i in dl] == ["img/r1_pa.png", "img/r1_lat.png", "img/r2.png"]
    np.testing.assert_array_equal(dl.items[0]["label"], [1.0, np.nan])
    np.testing.assert_array_equal(dl.items[2]["label"], [0.0, np.nan])
    assert "1 of 4 report ids have no image" in caplog.text
    assert "1 images have no report labels" in caplog.text
    every = read_report_labels(reports, images, uncertain="zeros")
    assert every.labels == ["Effusion", "Pneumonia", "No Finding"] and len(every) == 4


def test_report_labels_custom_id_field(tmp_path: Path) -> None:
    reports = write_csv(tmp_path / "r.csv", "accession,Effusion\nA1,1\n")
    images = write_csv(tmp_path / "i.csv", "accession,image\nA1,a.png\n")
    write_png(tmp_path / "a.png")
    dl = read_report_labels(reports, images, id_field="accession")
    assert len(dl) == 1 and dl.items[0]["label"].tolist() == [1.0]
    with pytest.raises(DatasetError, match="did you mean 'accession'"):
        read_report_labels(reports, images, id_field="acession")


def test_report_labels_duplicate_id(tmp_path: Path) -> None:
    reports = write_csv(tmp_path / "r.csv", "id,Effusion\nA1,1\nA1,0\n")
    images = write_csv(tmp_path / "i.csv", "id,image\nA1,a.png\n")
    with pytest.raises(DatasetError, match=r"r\.csv:3: id 'A1' appears twice"):
        read_report_labels(reports, images)
