"""Label tables: presets, value parsing, blanks, uncertain policies, filters and errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from radiolens.data import LABEL_PRESETS, Datalist, read_label_table, resolve_labels
from radiolens.errors import ConfigError, DatasetError
from radiolens.findings import CHESTXRAY14_FINDINGS

Table = Callable[[str], Path]

BASIC = """
image,patient_id,pneumonia,normal,Effusion,split,sex,age,view,source
a.png,P1,1,0,,train,M,45.0,PA,kermany
b.png,P1,0,1,0,train,Female,,ap,kermany
c.png,P2,-1,,1,val,,70,PA,nih
d.png,P3,,,,val,F,3,,nih
e.png,P4,1.0,False,-1.0,valid,male,12,AP,other
"""


def test_presets() -> None:
    assert LABEL_PRESETS["nih14"] == list(CHESTXRAY14_FINDINGS)
    assert len(LABEL_PRESETS["nih14"]) == 14
    cols = ["image", "pneumonia", "normal", *CHESTXRAY14_FINDINGS]
    assert resolve_labels("pneumonia", cols) == ["pneumonia"]
    assert resolve_labels("abnormal", cols) == ["abnormal"]
    assert resolve_labels("nih14", cols) == list(CHESTXRAY14_FINDINGS)
    assert resolve_labels("Effusion, Mass,Effusion", cols) == ["Effusion", "Mass"]
    assert resolve_labels(["normal", "nih14"], cols)[:2] == ["normal", "Atelectasis"]


def test_resolve_unknown_column_did_you_mean() -> None:
    with pytest.raises(DatasetError, match=r"'Efusion'.*did you mean 'Effusion'"):
        resolve_labels("Efusion", ["image", "Effusion"])
    with pytest.raises(DatasetError, match=r"derived from column 'normal'"):
        resolve_labels("abnormal", ["image", "pneumonia"])
    with pytest.raises(DatasetError, match="no labels"):
        resolve_labels(" , ", ["image"])


def test_read_basic(table: Table, tmp_path: Path) -> None:
    dl = read_label_table(table(BASIC), "pneumonia,Effusion")
    assert isinstance(dl, Datalist) and dl.labels == ["pneumonia", "Effusion"]
    # d.png has both selected labels blank: dropped.
    assert [Path(i["image"]).name for i in dl] == ["a.png", "b.png", "c.png", "e.png"]
    a, b, c, e = dl.items
    assert a["image"] == str(tmp_path / "a.png") and Path(a["image"]).is_absolute()
    assert a["id"] == "a.png" and a["patient_id"] == "P1"
    assert a["label"].dtype == np.float32
    np.testing.assert_array_equal(a["label"], [1.0, np.nan])      # blank -> nan
    np.testing.assert_array_equal(c["label"], [np.nan, 1.0])      # -1 ignored -> nan
    np.testing.assert_array_equal(e["label"], [1.0, np.nan])      # 1.0 and -1.0
    assert (a["sex"], a["age"], a["view"], a["split"]) == ("M", "45", "PA", "train")
    assert (b["sex"], b["age"], b["view"]) == ("F", "", "AP")
    assert (e["sex"], e["split"]) == ("M", "val")


def test_all_blank_rows_dropped_with_a_log(table: Table, caplog: pytest.LogCaptureFixture
                                           ) -> None:
    with caplog.at_level(logging.WARNING, logger="radiolens.data.tables"):
        dl = read_label_table(table(BASIC), "Effusion")
    assert [i["id"] for i in dl] == ["b.png", "c.png"]
    assert "dropped 2 rows" in caplog.text and "blank" in caplog.text
    assert "dropped 1 rows" in caplog.text and "uncertain" in caplog.text


@pytest.mark.parametrize(("policy", "expected"), [("zeros", 0.0), ("ones", 1.0)])
def test_uncertain_policies(table: Table, policy: str, expected: float) -> None:
    dl = read_label_table(table(BASIC), "pneumonia", uncertain=policy)
    c = next(i for i in dl if i["id"] == "c.png")
    assert c["label"][0] == expected


def test_unknown_policy(table: Table) -> None:
    with pytest.raises(ConfigError, match="did you mean 'zeros'"):
        read_label_table(table(BASIC), "pneumonia", uncertain="zero")


def test_derived_abnormal(table: Table) -> None:
    dl = read_label_table(table(BASIC), "abnormal")
    assert {i["id"]: float(i["label"][0]) for i in dl} == {"a.png": 1.0, "b.png": 0.0,
                                                             "e.png": 1.0}


def test_summary_and_subset_and_filter(table: Table) -> None:
    dl = read_label_table(table(BASIC), "pneumonia,Effusion")
    s = dl.summary()
    assert s["n_images"] == 4 and s["n_patients"] == 3
    assert s["splits"] == {"train": 2, "val": 2}
    assert s["labels"]["pneumonia"] == {"positive": 2, "negative": 1, "missing": 1}
    assert s["labels"]["Effusion"] == {"positive": 1, "negative": 1, "missing": 2}
    assert len(dl.subset("val")) == 2
    with pytest.raises(DatasetError, match="did you mean 'val'"):
        dl.subset("vall")
    assert [i["id"] for i in dl.filter(view="PA")] == ["a.png", "c.png"]
    assert len(dl.filter(lambda i: i["sex"] == "M", view=["PA", "AP"])) == 2
    one = dl.select_labels(["Effusion"])
    assert one.labels == ["Effusion"] and one.items[2]["label"].tolist() == [1.0]
    assert len(dl + dl) == 8


def test_where_filter(table: Table) -> None:
    path = table(BASIC)
    dl = read_label_table(path, "pneumonia", uncertain="zeros", where={"source": "nih"})
    assert [i["id"] for i in dl] == ["c.png"]
    dl = read_label_table(path, "pneumonia", uncertain="ones",
                          where={"source": "kermany, other"})
    assert len(dl) == 3
    with pytest.raises(DatasetError, match="did you mean 'source'"):
        read_label_table(path, "pneumonia", where={"sourc": "x"})


def test_bad_value_names_file_and_line(table: Table) -> None:
    path = table("image,patient_id,pneumonia\na.png,P1,1\nb.png,P2,yes\n")
    with pytest.raises(DatasetError, match=r"labels\.csv:3: column 'pneumonia' has value 'yes'"):
        read_label_table(path, "pneumonia")


def test_missing_image_column(table: Table) -> None:
    path = table("Image,pneumonia\na.png,1\n")
    with pytest.raises(DatasetError, match=r"no 'image' column.*did you mean 'Image'"):
        read_label_table(path, "pneumonia")


def test_missing_label_column(table: Table) -> None:
    with pytest.raises(DatasetError, match=r"'Pneumothorax' is not in the table"):
        read_label_table(table(BASIC), "Pneumothorax")


def test_missing_files_listed_once(tmp_path: Path) -> None:
    from .conftest import write_csv, write_png

    rows = "\n".join(f"img{i}.png,P{i},1" for i in range(8))
    path = write_csv(tmp_path / "t.csv", "image,patient_id,pneumonia\n" + rows)
    write_png(tmp_path / "img0.png")
    with pytest.raises(DatasetError) as info:
        read_label_table(path, "pneumonia")
    message = str(info.value)
    assert "7 image files" in message and "img1.png" in message and "and 2 more" in message
    assert "--skip-missing" in message and "\n" not in message
    assert len(read_label_table(path, "pneumonia", on_missing="drop")) == 1


def test_missing_label_never_suggests_its_own_name(table: Table) -> None:
    path = table("image,patient_id,Pneumonia,Effusion\na.png,P1,1,0\n")
    with pytest.raises(DatasetError) as info:
        read_label_table(path, "pneumonia", labels_from="the default --labels pneumonia")
    message = str(info.value)
    assert "did you mean 'Pneumonia'" in message and "did you mean 'pneumonia'" not in message
    assert "the default --labels pneumonia" in message
    assert "available columns: image, patient_id, Pneumonia, Effusion" in message
    path = table("image,patient_id,Effusion\na.png,P1,1\n")
    with pytest.raises(DatasetError) as info:
        read_label_table(path, "pneumonia")
    assert "did you mean" not in str(info.value)


def test_images_root(tmp_path: Path) -> None:
    from .conftest import write_csv, write_png

    write_png(tmp_path / "pics" / "x.png")
    path = write_csv(tmp_path / "meta" / "t.csv", "image,patient_id,normal\nx.png,P,0\n")
    dl = read_label_table(path, "normal", images_root=tmp_path / "pics")
    assert dl.items[0]["image"] == str(tmp_path / "pics" / "x.png")


def test_no_patient_id_falls_back_with_warning(table: Table,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="radiolens.data.tables"):
        dl = read_label_table(table("image,pneumonia\na.png,1\nb.png,0\n"), "pneumonia")
    assert dl.items[0]["patient_id"] == dl.items[0]["image"]
    assert "patient_id" in caplog.text


def test_missing_csv(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_label_table(tmp_path / "nope.csv", "pneumonia")


def test_image_name_over_the_file_system_limit_is_a_missing_image(tmp_path: Path) -> None:
    from .conftest import write_csv, write_png

    long_name = "a" * 300 + ".png"  # one path component over 255 bytes: ENAMETOOLONG
    path = write_csv(tmp_path / "t.csv",
                     f"image,patient_id,pneumonia\nimg0.png,P0,1\n{long_name},P1,1\n")
    write_png(tmp_path / "img0.png")
    with pytest.raises(DatasetError, match=r"1 image files named in the table do not exist: "
                                           rf".*{long_name}.*--skip-missing"):
        read_label_table(path, "pneumonia")
    assert len(read_label_table(path, "pneumonia", on_missing="drop")) == 1
