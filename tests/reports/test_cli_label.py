"""`radiolens label` and `radiolens label-eval` end to end: every input format, every
bad-input case, exit codes and messages."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import pytest

from radiolens.cli.main import main

REPORTS = [
    ("r1", "No pleural effusion or pneumothorax.", "Normal chest."),
    ("r2", "Small left pleural effusion. Heart is enlarged.", "Effusion and cardiomegaly."),
    ("r3", "Streaky opacity may represent atelectasis.", "Possible atelectasis."),
]


def read_table(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def reports_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "reports.csv", [
        {"id": i, "indication": "rule out pneumonia", "findings": f, "impression": imp}
        for i, f, imp in REPORTS])


def reports_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "reports.jsonl"
    path.write_text("".join(json.dumps({"id": i, "findings": f, "impression": imp}) + "\n"
                            for i, f, imp in REPORTS), encoding="utf-8")
    return path


def openi_xml(rid: str, findings: str, impression: str) -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?><eCitation><meta type="rr"/>'
            f'<uId id="{rid}"/><MedlineCitation><Article><Abstract>'
            f'<AbstractText Label="INDICATION">Pneumonia?</AbstractText>'
            f'<AbstractText Label="FINDINGS">{findings}</AbstractText>'
            f'<AbstractText Label="IMPRESSION">{impression}</AbstractText>'
            f'</Abstract></Article></MedlineCitation></eCitation>')


def check_expected(table: dict[str, dict[str, str]]) -> None:
    assert set(table) == {"r1", "r2", "r3"}
    assert table["r1"]["Effusion"] == "0" and table["r1"]["Pneumothorax"] == "0"
    assert table["r1"]["Pneumonia"] == "" and table["r1"]["No Finding"] == "1"
    assert table["r2"]["Effusion"] == "1" and table["r2"]["Cardiomegaly"] == "1"
    assert table["r2"]["No Finding"] == "0"
    assert table["r3"]["Atelectasis"] == "-1" and table["r3"]["No Finding"] == "0"


def test_csv_input(tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    assert main(["label", str(reports_csv(tmp_path)), "-o", str(out)]) == 0
    header = out.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == ["id", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion",
                      "Emphysema", "Fibrosis", "Hernia", "Infiltration", "Mass", "Nodule",
                      "Pleural_Thickening", "Pneumonia", "Pneumothorax", "No Finding"]
    check_expected(read_table(out))


def test_jsonl_input_and_evidence(tmp_path: Path) -> None:
    out, ev = tmp_path / "labels.csv", tmp_path / "evidence.jsonl"
    assert main(["label", str(reports_jsonl(tmp_path)), "-o", str(out), "--evidence",
                 str(ev)]) == 0
    check_expected(read_table(out))
    lines = [json.loads(x) for x in ev.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == ["r1", "r2", "r3"]
    r1 = {e["finding"]: e for e in lines[0]["evidence"] if e["decisive"]}
    assert r1["Pneumothorax"]["sentence"] == "No pleural effusion or pneumothorax"
    assert r1["Pneumothorax"]["phrase"] == "pneumothorax"
    assert r1["Pneumothorax"]["rule"] == "negation" and r1["Pneumothorax"]["trigger"] == "no"
    assert lines[0]["source"].endswith("reports.jsonl:1")


def test_txt_folder_input(tmp_path: Path) -> None:
    folder = tmp_path / "txt"
    folder.mkdir()
    for rid, f, imp in REPORTS:
        (folder / f"{rid}.txt").write_text(
            f"INDICATION: pneumonia?\nFINDINGS: {f}\nIMPRESSION: {imp}\n", encoding="utf-8")
    (folder / "notes.md").write_text("ignored", encoding="utf-8")
    out = tmp_path / "labels.csv"
    assert main(["label", str(folder), "-o", str(out)]) == 0
    check_expected(read_table(out))


def test_openi_xml_folder_and_tgz(tmp_path: Path) -> None:
    folder = tmp_path / "ecgen-radiology"
    folder.mkdir()
    for n, (rid, f, imp) in enumerate(REPORTS, 1):
        (folder / f"{n}.xml").write_text(openi_xml(rid, f, imp), encoding="utf-8")
    out = tmp_path / "a.csv"
    assert main(["label", str(folder), "-o", str(out)]) == 0
    check_expected(read_table(out))
    archive = tmp_path / "NLMCXR_reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="ecgen-radiology")
    out2 = tmp_path / "b.csv"
    assert main(["label", str(archive), "-o", str(out2)]) == 0
    check_expected(read_table(out2))


def test_text_and_id_fields(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "x.csv", [{"accession": "A1", "report": "FINDINGS: Small "
                                          "pneumothorax. INDICATION: pneumonia"},
                                         {"accession": "A2", "report": "No pneumothorax."}])
    out = tmp_path / "o.csv"
    assert main(["label", str(src), "-o", str(out), "--id-field", "accession"]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["A1", "A2"]
    assert rows[0]["Pneumothorax"] == "1" and rows[0]["Pneumonia"] == ""
    assert rows[1]["Pneumothorax"] == "0"
    src2 = write_csv(tmp_path / "y.csv", [{"id": "1", "notes": "Large effusion.", "x": ""}])
    assert main(["label", str(src2), "-o", str(out), "--text-fields", "notes"]) == 0
    assert read_table(out)["1"]["Effusion"] == "1"


def test_workers_give_the_same_table(tmp_path: Path) -> None:
    rows = [{"id": str(i), "findings": REPORTS[i % 3][1], "impression": REPORTS[i % 3][2]}
            for i in range(600)]
    src = write_csv(tmp_path / "many.csv", rows)
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    assert main(["label", str(src), "-o", str(one)]) == 0
    assert main(["label", str(src), "-o", str(two), "--workers", "2"]) == 0
    assert one.read_bytes() == two.read_bytes()


def test_chexpert_schema_and_user_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("findings:\n  Rib Fracture:\n    mentions: [rib fracture]\n", encoding="utf-8")
    src = write_csv(tmp_path / "r.csv", [{"id": "1", "report": "Left rib fracture. ET tube "
                                          "in place. Possible small effusion."}])
    out = tmp_path / "o.csv"
    assert main(["label", str(src), "-o", str(out), "--schema", "chexpert", "--rules",
                 str(rules)]) == 0
    row = read_table(out)["1"]
    assert row["Rib Fracture"] == "1" and row["Support Devices"] == "1"
    assert row["Pleural Effusion"] == "-1" and row["Fracture"] == "1"


# ---- bad input ----------------------------------------------------------------------

def run_err(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_err(capsys, ["label", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o")])
    assert code == 2 and "nope.csv" in err and "no such file" in err
    assert "Traceback" not in err


def test_csv_without_id_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_csv(tmp_path / "r.csv", [{"ID": "1", "findings": "x"}])
    code, err = run_err(capsys, ["label", str(src), "-o", str(tmp_path / "o.csv")])
    assert code == 2 and "r.csv" in err and "did you mean 'ID'" in err and "--id-field" in err
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.csv.partial").exists()


def test_csv_without_text_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_csv(tmp_path / "r.csv", [{"id": "1", "body": "x"}])
    code, err = run_err(capsys, ["label", str(src), "-o", str(tmp_path / "o.csv")])
    assert code == 2 and "--text-fields" in err and "body" in err


def test_non_utf8_csv_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "r.csv"
    src.write_bytes(b"id,findings\n1,No effusion.\n2,Caf\xe9 effusion\n3,Small effusion.\n")
    out = tmp_path / "o.csv"
    code, err = run_err(capsys, ["label", str(src), "-o", str(out)])
    assert code == 2 and "r.csv:3" in err and "UTF-8" in err and not out.exists()
    code, err = run_err(capsys, ["label", str(src), "-o", str(out), "--on-error", "skip"])
    assert code == 0 and "skipped" in err and "r.csv:3" in err
    assert set(read_table(out)) == {"1", "3"}


def test_binary_file_is_not_a_text_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "garbage.csv"
    src.write_bytes(bytes(range(256)) * 4)
    code, err = run_err(capsys, ["label", str(src), "-o", str(tmp_path / "o.csv")])
    assert code == 2 and "garbage.csv: not a text CSV file (not UTF-8)" in err
    assert "columns:" not in err and "\\udc" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("line, message", [
    (b'{"id": "2", "findings": "x"\n', "not valid JSON"),
    (b'{"findings": "Effusion."}\n', "no 'id' field"),
    (b'{"id": "2", "findings": "Caf\xe9"}\n', "not UTF-8"),
    (b'{"id": "2", "findings": "", "impression": "  "}\n', "empty report"),
    (b'{"id": "2", "findings": 5}\n', "not text"),
    (b'["a", "list"]\n', "JSON object"),
    (b'{"id": "2", "body": "x"}\n', "--text-fields"),
])
def test_bad_jsonl_records(tmp_path: Path, capsys: pytest.CaptureFixture[str], line: bytes,
                           message: str) -> None:
    src = tmp_path / "r.jsonl"
    src.write_bytes(b'{"id": "1", "findings": "No effusion."}\n' + line
                    + b'{"id": "3", "findings": "Effusion."}\n')
    out = tmp_path / "o.csv"
    code, err = run_err(capsys, ["label", str(src), "-o", str(out)])
    assert code == 2 and "r.jsonl:2" in err and message in err
    code, err = run_err(capsys, ["label", str(src), "-o", str(out), "--on-error", "skip"])
    assert code == 0 and "r.jsonl:2" in err and message in err
    assert set(read_table(out)) == {"1", "3"}


def test_bad_txt_reports_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "a.txt").write_text("Small effusion.", encoding="utf-8")
    (folder / "b.txt").write_bytes(b"\xff\xfe\x00bad")
    (folder / "c.txt").write_text("   \n", encoding="utf-8")
    out = tmp_path / "o.csv"
    code, err = run_err(capsys, ["label", str(folder), "-o", str(out), "--on-error", "skip"])
    assert code == 0 and "b.txt" in err and "c.txt" in err and "empty report" in err
    assert set(read_table(out)) == {"a"}


def test_corrupt_archive_and_xml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "reports.tgz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    code, err = run_err(capsys, ["label", str(bad), "-o", str(tmp_path / "o.csv")])
    assert code == 2 and "reports.tgz" in err
    folder = tmp_path / "xml"
    folder.mkdir()
    (folder / "1.xml").write_text(openi_xml("CXR1", "No effusion.", "Normal."), encoding="utf-8")
    (folder / "2.xml").write_text("<eCitation><uId id='CXR2'>", encoding="utf-8")
    code, err = run_err(capsys, ["label", str(folder), "-o", str(tmp_path / "o.csv"),
                                 "--on-error", "skip"])
    assert code == 0 and "2.xml" in err and "not valid XML" in err


def test_bad_output_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = reports_csv(tmp_path)
    code, err = run_err(capsys, ["label", str(src), "-o", str(tmp_path / "no" / "o.csv")])
    assert code == 2 and "does not exist" in err
    with pytest.raises(SystemExit) as exc:
        main(["label", str(src), "-o", "o.csv", "--schema", "chexpret"])
    assert exc.value.code == 2
    assert "did you mean 'chexpert'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["label", str(src), "-o", "o.csv", "--workers", "0"])
    assert exc.value.code == 2


def test_unknown_extension_needs_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "reports.dat"
    src.write_text('{"id": "1", "findings": "Effusion."}\n', encoding="utf-8")
    code, err = run_err(capsys, ["label", str(src), "-o", str(tmp_path / "o.csv")])
    assert code == 2 and "--format" in err
    assert main(["label", str(src), "-o", str(tmp_path / "o.csv"), "--format", "jsonl"]) == 0


# ---- label-eval -----------------------------------------------------------------------

def test_label_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write_csv(tmp_path / "pred.csv", [
        {"id": "1", "Effusion": "1", "Edema": "-1"}, {"id": "2", "Effusion": "0", "Edema": "1"},
        {"id": "3", "Effusion": "1", "Edema": ""}])
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps({"id": i, "labels": lab}) for i, lab in [
        ("1", {"Effusion": 1, "Edema": 1}), ("2", {"Effusion": 1, "Edema": 1}),
        ("3", {"Effusion": 0, "Edema": 0})]) + "\n", encoding="utf-8")
    out = tmp_path / "scores.json"
    assert main(["label-eval", str(pred), str(gold), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Effusion" in text and "micro" in text and "macro" in text
    scores = json.loads(out.read_text(encoding="utf-8"))
    neg = {s["finding"]: s for s in scores["uncertain_as_negative"]["per_finding"]}
    pos = {s["finding"]: s for s in scores["uncertain_as_positive"]["per_finding"]}
    assert (neg["Effusion"]["tp"], neg["Effusion"]["fp"], neg["Effusion"]["fn"]) == (1, 1, 1)
    assert (neg["Edema"]["tp"], neg["Edema"]["fn"]) == (1, 1)
    assert (pos["Edema"]["tp"], pos["Edema"]["fn"]) == (2, 0)
    micro = scores["uncertain_as_negative"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (2, 1, 2)


def test_label_eval_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write_csv(tmp_path / "pred.csv", [{"id": "1", "Effusion": "2"}])
    gold = write_csv(tmp_path / "gold.csv", [{"id": "1", "Effusion": "1"}])
    code, err = run_err(capsys, ["label-eval", str(pred), str(gold)])
    assert code == 2 and "pred.csv:2" in err and "Effusion" in err
    pred = write_csv(tmp_path / "pred.csv", [{"id": "9", "Effusion": "1"}])
    code, err = run_err(capsys, ["label-eval", str(pred), str(gold)])
    assert code == 2 and "no report id" in err
    code, err = run_err(capsys, ["label-eval", str(pred), str(gold), "--findings", "Efusion"])
    assert code == 2 and "did you mean 'Effusion'" in err


def _gold(tmp_path: Path, rows: list[tuple[str, dict[str, int]]]) -> Path:
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": i, "labels": lab}) + "\n" for i, lab in rows),
                    encoding="utf-8")
    return gold


def test_label_eval_leaves_unannotated_findings_out(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pred = write_csv(tmp_path / "pred.csv", [
        {"id": "1", "Effusion": "1", "Hernia": "1"}, {"id": "2", "Effusion": "0", "Hernia": ""}])
    gold = _gold(tmp_path, [("1", {"Effusion": 1, "Hernia": 0}),
                            ("2", {"Effusion": 0, "Hernia": 0})])
    out = tmp_path / "s.json"
    assert main(["label-eval", str(pred), str(gold), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "not annotated in gold" in text and "--keep-unannotated" in text
    scores = json.loads(out.read_text(encoding="utf-8"))["uncertain_as_negative"]
    assert scores["not_annotated_in_gold"] == ["Hernia"]
    assert scores["macro"]["f1"] == 1.0 and scores["micro"]["fp"] == 0
    assert main(["label-eval", str(pred), str(gold), "--keep-unannotated",
                 "--json", str(out)]) == 0
    scores = json.loads(out.read_text(encoding="utf-8"))["uncertain_as_negative"]
    assert scores["not_annotated_in_gold"] == [] and scores["macro"]["f1"] == 0.5


def test_label_eval_maps_chexpert_names_to_chestxray14(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_csv(tmp_path / "r.csv", [
        {"id": "1", "report": "Small left pleural effusion."},
        {"id": "2", "report": "No pleural effusion. Heart size normal."}])
    pred = tmp_path / "chexpert.csv"
    assert main(["label", str(src), "-o", str(pred), "--schema", "chexpert"]) == 0
    gold = _gold(tmp_path, [("1", {"Effusion": 1, "Cardiomegaly": 0}),
                            ("2", {"Effusion": 0, "Cardiomegaly": 1})])
    out = tmp_path / "s.json"
    assert main(["label-eval", str(pred), str(gold), "--json", str(out)]) == 0
    assert "Pleural Effusion as Effusion" in capsys.readouterr().out
    per = {s["finding"]: s for s in json.loads(out.read_text(encoding="utf-8"))
           ["uncertain_as_negative"]["per_finding"]}
    assert (per["Effusion"]["tp"], per["Effusion"]["fp"]) == (1, 0)
