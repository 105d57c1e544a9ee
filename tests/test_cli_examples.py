"""``radiolens examples``: the files the README's tour runs on."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from radiolens.cli.main import main


def test_examples_writes_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ex"
    assert main(["examples", str(out)]) == 0
    out_text = capsys.readouterr().out
    assert "8 radiographs" in out_text and "synthetic training images" in out_text
    assert (out / "synthetic" / "labels.csv").is_file()
    rows = list(csv.DictReader((out / "images.csv").read_text("utf-8").splitlines()))
    assert len(rows) == 8 and all((out / r["image"]).is_file() for r in rows)
    assert {r["split"] for r in rows} == {"train", "val"}
    val = [r for r in rows if r["split"] == "val"]
    assert {r["pneumonia"] for r in val} == {"0", "1"}  # validation holds both classes
    assert len(list((out / "dicom").glob("*.dcm"))) == 8
    gold = list(csv.DictReader((out / "reports_gold.csv").read_text("utf-8").splitlines()))
    reports = (out / "reports.jsonl").read_text("utf-8").splitlines()
    assert [g["id"] for g in gold] == [f"EX-{i:03d}" for i in range(1, len(reports) + 1)]


def test_examples_refuses_a_folder_in_use(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["examples", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not an empty folder" in err and err.count("\n") == 1
    assert (tmp_path / "keep.txt").read_text() == "mine"
