"""radiolens deidentify: no identifier survives, pseudonyms are consistent, text is flagged."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pydicom
import pytest

from radiolens.cli.main import main
from radiolens.errors import MissingDependencyError
from radiolens.privacy import REPORT_JSON, Deidentifier, OcrUnavailableError, TextDetector
from tests.privacy.conftest import (
    NAME,
    PATIENT_ID,
    SECRETS,
    SOP_UIDS,
    STUDY_UID,
    grey_pixels,
    make_dataset,
    tesseract_missing,
)

needs_tesseract = pytest.mark.skipif(
    tesseract_missing, reason="Tesseract is not installed (apt-get install tesseract-ocr)")


def outputs(out: Path) -> list[Path]:
    return sorted(out.rglob("*.dcm"))


def report(out: Path) -> dict:
    return json.loads((out / REPORT_JSON).read_text(encoding="utf-8"))


def test_no_identifier_left_in_any_output_byte(patient_folder: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG, logger="radiolens"):
        code = main(["deidentify", str(patient_folder), str(out), "--salt", "s3cret",
                     "--no-ocr"])
    assert code == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(outputs(out)) == 2 and (out / REPORT_JSON).is_file()
    for path in files:
        data = path.read_bytes().lower()
        name = str(path.relative_to(out)).lower()
        for secret in SECRETS:
            needle = secret.lower()
            assert needle.encode() not in data, f"{secret!r} left in {path.name}"
            assert needle not in name
    logged = caplog.text.lower() + capsys.readouterr().out.lower()
    for secret in (NAME, "quixotewright", PATIENT_ID):
        assert secret.lower() not in logged


def test_one_patient_one_pseudonym_and_uids_remapped(patient_folder: Path,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["deidentify", str(patient_folder), str(out), "--salt", "k1", "--no-ocr"]) == 0
    a, b = (pydicom.dcmread(p) for p in outputs(out))
    assert a.PatientID == b.PatientID and a.PatientID != PATIENT_ID
    assert str(a.PatientName) == str(b.PatientName) != NAME
    assert a.StudyInstanceUID == b.StudyInstanceUID != STUDY_UID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert {a.SOPInstanceUID, b.SOPInstanceUID}.isdisjoint(SOP_UIDS)
    for ds in (a, b):
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.PatientIdentityRemoved == "YES"  # BurnedInAnnotation NO, OCR off
        assert "radiolens" in str(ds.DeidentificationMethod)
        assert "ImageComments" not in ds and "PatientBirthDate" in ds
        assert not any(elem.tag.is_private for elem in ds)
    # the same salt gives the same pseudonyms; another salt others
    again, other = tmp_path / "again", tmp_path / "other"
    assert main(["deidentify", str(patient_folder), str(again), "--salt", "k1",
                 "--no-ocr"]) == 0
    assert main(["deidentify", str(patient_folder), str(other), "--salt", "k2",
                 "--no-ocr"]) == 0
    same = pydicom.dcmread(outputs(again)[0])
    diff = pydicom.dcmread(outputs(other)[0])
    assert same.PatientID == a.PatientID and same.StudyInstanceUID == a.StudyInstanceUID
    assert diff.PatientID != a.PatientID and diff.StudyInstanceUID != a.StudyInstanceUID


def test_two_patients_get_two_pseudonyms(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    make_dataset(0).save_as(src / "a.dcm", enforce_file_format=True)
    make_dataset(1, patient_id="MRN-0000002", name="Other^Person").save_as(
        src / "b.dcm", enforce_file_format=True)
    report_ = Deidentifier("salt", ocr=False).load().run(src, tmp_path / "out")
    ids = {pydicom.dcmread(tmp_path / "out" / f.output).PatientID for f in report_.files}
    assert len(ids) == 2


def test_declared_burned_in_annotation_is_flagged(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    make_dataset(0, burned_in="YES").save_as(src / "a.dcm", enforce_file_format=True)
    assert main(["deidentify", str(src), str(tmp_path / "out"), "--no-ocr"]) == 1
    assert "burned-in annotation declared" in capsys.readouterr().err
    (row,) = report(tmp_path / "out")["files"]
    assert row["flagged"] and row["patient_identity_removed"] == "NO"
    ds = pydicom.dcmread(tmp_path / "out" / row["output"])
    assert ds.PatientIdentityRemoved == "NO"
    assert main(["deidentify", str(src), str(tmp_path / "out2"), "--no-ocr",
                 "--allow-flagged"]) == 0


@needs_tesseract
def test_ocr_flags_rendered_text_and_not_a_plain_image(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    detector = TextDetector().load()
    assert detector.detect(grey_pixels("SMITH JOHN 1945")).text_found
    assert not detector.detect(grey_pixels()).text_found

    src = tmp_path / "in"
    src.mkdir()
    make_dataset(0, grey_pixels("SMITH JOHN 1945")).save_as(src / "text.dcm",
                                                            enforce_file_format=True)
    make_dataset(1).save_as(src / "plain.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    assert main(["deidentify", str(src), str(out), "--salt", "x"]) == 1
    err = capsys.readouterr().err
    assert "burned-in text suspected" in err
    rows = {r["status"]: r for r in report(out)["files"]}
    assert set(rows) == {"ok", "burned-in text suspected"}
    flagged, clean = rows["burned-in text suspected"], rows["ok"]
    assert flagged["ocr_words"] >= 1 and flagged["ocr_boxes"]
    assert clean["ocr"] == "clean" and clean["patient_identity_removed"] == "YES"
    ds = pydicom.dcmread(out / flagged["output"])
    assert ds.PatientIdentityRemoved == "NO" and ds.BurnedInAnnotation == "YES"
    # the recognised words are never written out
    assert b"smith" not in (out / REPORT_JSON).read_bytes().lower()
    assert flagged["output"] in err


def test_missing_input_is_one_line_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deidentify", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such file or folder" in err and len(err.splitlines()) == 1


def test_output_inside_input_is_refused(patient_folder: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deidentify", str(patient_folder), str(patient_folder / "out"),
                 "--no-ocr"]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    assert not (patient_folder / "out").exists()


def test_non_dicom_files_are_skipped_and_listed(patient_folder: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deidentify", str(patient_folder), str(tmp_path / "out"), "--no-ocr"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 files that are not DICOM" in err and "notes.txt" in err
    assert main(["deidentify", str(patient_folder / "notes.txt"), str(tmp_path / "o2"),
                 "--no-ocr"]) == 2
    assert "holds no DICOM file" in capsys.readouterr().err


def test_missing_pytesseract_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytesseract", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'radiolens\[privacy\]'"):
        TextDetector().load()


def test_missing_tesseract_program_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pytesseract")
    monkeypatch.setattr("shutil.which", lambda cmd: None)
    with pytest.raises(OcrUnavailableError, match="apt-get install tesseract-ocr"):
        TextDetector().load()


def test_pydicom_warnings_quoting_values_are_not_shown(tmp_path: Path) -> None:
    import warnings

    src = tmp_path / "in"
    src.mkdir()
    long_name = "Quixotewright" * 6 + "^Philomena"  # over 64 characters: pydicom warns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test's own over-long name
        make_dataset(0, name=long_name).save_as(src / "a.dcm", enforce_file_format=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Deidentifier("s", ocr=False).load().run(src, tmp_path / "out")
    assert not [w for w in caught if "quixotewright" in str(w.message).lower()]
    data = next((tmp_path / "out").rglob("*.dcm")).read_bytes().lower()
    assert b"quixotewright" not in data


def test_a_short_numeric_patient_id_does_not_remove_uids(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        make_dataset(i, patient_id="123").save_as(src / f"{i}.dcm", enforce_file_format=True)
    report_ = Deidentifier("salt", ocr=False).load().run(src, tmp_path / "out")
    for f in report_.files:
        ds = pydicom.dcmread(tmp_path / "out" / f.output)
        assert ds.SOPInstanceUID and ds.StudyInstanceUID and ds.SeriesInstanceUID
        assert ds.PatientID != "123" and ds.InstanceNumber in (1, 2)
