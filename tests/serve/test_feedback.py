"""Signed reads flow back: ``radiolens feedback export`` and training on its table."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from radiolens.cli.main import main
from radiolens.worklist import list_results, open_worklist
from radiolens.worklist.feedback import agreement
from radiolens.worklist.reviews import sign_review

from .conftest import World


@pytest.fixture
def reviewed(tmp_path: Path) -> World:
    """40 scored studies (one patient each); every one signed, pneumonia in every third."""
    data_dir = tmp_path / "data"
    world = World(data_dir, open_worklist(data_dir / "worklist.db"))
    for i in range(40):
        name = f"s{i}"
        world.add_study(name, f"PID-SECRET-{i:03d}", 100 + i)
        p = 0.9 if i % 3 == 0 else 0.1
        world.score(name, {"Pneumothorax": 0.1, "Effusion": 0.2, "Pneumonia": p}, 50,
                    files=False)
        result = list_results(world.engine, world.uids[name])[0]
        calls = {"Pneumothorax": "absent", "Effusion": "uncertain" if i == 0 else "absent",
                 "Pneumonia": "present" if i % 3 == 0 or i == 1 else "absent"}
        sign_review(world.engine, world.uids[name], reviewer="ada", result_id=result.id,
                    findings=calls, text="read", now=dt.datetime(2026, 11, 1 + i % 20, 9,
                                                                 tzinfo=dt.UTC))
    return world


def test_export_is_a_pseudonymous_label_table(reviewed: World, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reviewed.csv"
    assert main(["feedback", "export", "--data-dir", str(reviewed.data_dir), "-o",
                 str(out)]) == 0
    assert "40 images of 40 reviewed studies" in capsys.readouterr().out
    text = out.read_text()
    assert "PID-SECRET" not in text  # pseudonymous ids only
    rows = list(csv.DictReader(text.splitlines()))
    assert {r["Pneumonia"] for r in rows} == {"1", "0"}
    assert sum(r["Pneumonia"] == "1" for r in rows) == 15
    assert rows[0]["Effusion"] == "-1"
    assert all(Path(r["image"]).is_file() for r in rows)
    again = tmp_path / "again.csv"
    main(["feedback", "export", "--data-dir", str(reviewed.data_dir), "-o", str(again)])
    assert again.read_text() == text  # the same key gives the same pseudonyms
    since = tmp_path / "since.csv"
    assert main(["feedback", "export", "--data-dir", str(reviewed.data_dir), "-o", str(since),
                 "--since", "2026-11-15"]) == 0
    assert 0 < len(since.read_text().splitlines()) - 1 < 40


def test_training_accepts_the_exported_table(reviewed: World, tmp_path: Path) -> None:
    out = tmp_path / "reviewed.csv"
    main(["feedback", "export", "--data-dir", str(reviewed.data_dir), "-o", str(out)])
    # the pseudonymous ids differ per installation, so a hashed split of 40 patients
    # could leave fewer than 10 for validation: give the table a split column
    rows = list(csv.DictReader(out.read_text().splitlines()))
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, [*rows[0], "split"])
        writer.writeheader()
        writer.writerows({**r, "split": "val" if i % 2 else "train"}
                         for i, r in enumerate(rows))
    run = tmp_path / "run"
    assert main(["train", "--data", str(out), "--labels", "Pneumonia", "--model", "small-vgg",
                 "--image-size", "32", "--epochs", "1", "--batch-size", "8",
                 "-o", str(run)]) == 0
    assert (run / "model.json").is_file()


def test_agreement_against_the_reviewers(reviewed: World) -> None:
    rows = {r.finding: r for r in agreement(
        reviewed.engine, card={"Pneumonia": {"sensitivity": 0.95, "specificity": 0.99}})}
    pneumonia = rows["Pneumonia"]
    # model flags 14 of the 15 reviewer positives (study 1 is a miss) and no negative
    assert pneumonia.n == 40 and pneumonia.sensitivity == pytest.approx(14 / 15)
    assert pneumonia.specificity == 1.0
    assert pneumonia.sensitivity_ci is not None and pneumonia.sensitivity_ci[1] < 1.0
    assert rows["Effusion"].n == 39  # the uncertain call is left out
    assert not pneumonia.drift  # 0.95 lies inside the interval of 14/15 (0.70-0.99)
    drifted = agreement(reviewed.engine, card={"Pneumonia": {"sensitivity": 0.995}})
    assert [r.finding for r in drifted if r.drift] == ["Pneumonia"]


def test_feedback_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["feedback", "export", "--data-dir", str(tmp_path / "none"), "-o",
                 str(tmp_path / "x.csv")]) == 2
    assert "no worklist at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["feedback", "export", "-o", "x.csv", "--since", "yesterday"])
    assert exc.value.code == 2
