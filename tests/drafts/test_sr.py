from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from radiolens import DISCLAIMER
from radiolens.drafts import StudyResult, draft_report, make_heatmap_sc, make_sr
from radiolens.drafts.sr import HEATMAP_SERIES_DESCRIPTION, SR_SERIES_DESCRIPTION
from radiolens.errors import DraftError

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _text_items(ds: pydicom.Dataset) -> dict[str, str]:
    return {item.ConceptNameCodeSequence[0].CodeMeaning: item.TextValue
            for item in ds.ContentSequence if item.ValueType == "TEXT"}


def test_sr_roundtrip(tmp_path: Path, mixed_result: StudyResult, dx_source: Any) -> None:
    draft = draft_report(mixed_result)
    sr = make_sr(mixed_result, [dx_source], draft)
    path = tmp_path / "sr.dcm"
    pydicom.dcmwrite(path, sr, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert back.SOPClassUID == COMPREHENSIVE_SR
    assert back.StudyInstanceUID == dx_source.StudyInstanceUID
    assert back.SeriesInstanceUID != dx_source.SeriesInstanceUID
    assert back.PatientID == "P001"
    assert str(back.PatientName) == "Doe^Jane"
    assert back.SeriesDescription == SR_SERIES_DESCRIPTION
    assert back.Manufacturer == "radiolens"
    assert "radiolens" in str(back.SoftwareVersions)
    assert back.PreliminaryFlag == "PRELIMINARY"
    assert back.VerificationFlag == "UNVERIFIED"
    evidence = back.CurrentRequestedProcedureEvidenceSequence[0]
    refs = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert refs[0].ReferencedSOPInstanceUID == dx_source.SOPInstanceUID

    texts = _text_items(back)
    assert texts["Findings"] == draft.findings_text
    assert texts["Impression"] == draft.impression
    assert DISCLAIMER in texts["Comment"]
    assert "PRELIMINARY AI DRAFT —" in texts["Comment"]  # UTF-8 survives the write


def test_sr_groups_read_back_with_highdicom(tmp_path: Path, mixed_result: StudyResult,
                                            dx_source: Any) -> None:
    import highdicom as hd

    path = tmp_path / "sr.dcm"
    make_sr(mixed_result, [dx_source]).save_as(path, enforce_file_format=True)
    report = hd.sr.srread(path).content
    assert isinstance(report, hd.sr.MeasurementReport)
    groups = report.get_image_measurement_groups()
    assert len(groups) == len(mixed_result.findings)
    codes = {}
    for g in groups:
        assert g.finding_type is not None
        codes[g.finding_type.meaning] = g.finding_type
    by_name = {g.finding_type.meaning: g for g in groups if g.finding_type is not None}
    assert codes["Pneumonia"].value == "233604007"
    assert codes["Pleural thickening"].scheme_designator == "99RADIOLENS"
    pneumonia = by_name["Pneumonia"]
    values = {m.name.meaning: m.value for m in pneumonia.get_measurements()}
    assert values["Certainty of Finding"] == pytest.approx(87.0)
    assert values["AI operating threshold"] == pytest.approx(50.0)
    # QualitativeEvaluation.value is typed int | float in highdicom; read the CODE item.
    (call,) = pneumonia.get_qualitative_evaluations()
    assert call[0].value.meaning == "Present"
    (thick_call,) = by_name["Pleural thickening"].get_qualitative_evaluations()
    assert thick_call[0].value.meaning == "Absent"


def test_sr_parses_with_dcmtk(tmp_path: Path, mixed_result: StudyResult, dx_source: Any) -> None:
    tools = [t for t in ("/usr/bin/dsrdump", "/usr/bin/dciodvfy") if Path(t).exists()]
    if not tools:
        pytest.skip("neither dcmtk's dsrdump nor dicom3tools' dciodvfy is installed")
    path = tmp_path / "sr.dcm"
    make_sr(mixed_result, [dx_source]).save_as(path, enforce_file_format=True)
    for tool in tools:
        proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if tool.endswith("dsrdump"):
            assert "Comprehensive SR Document" in proc.stdout
            assert "PRELIMINARY" in proc.stdout
            assert "Pneumonia" in proc.stdout
        else:
            assert "Error" not in proc.stderr, proc.stderr


def test_sr_refuses_image_of_another_study(mixed_result: StudyResult, dx_source: Any) -> None:
    dx_source.StudyInstanceUID = "1.2.3.4"
    with pytest.raises(DraftError, match="belongs to study"):
        make_sr(mixed_result, [dx_source])


def test_sr_refuses_image_of_another_patient(mixed_result: StudyResult,
                                             dx_source: Any) -> None:
    dx_source.PatientID = "OTHER"
    with pytest.raises(DraftError, match="another patient"):
        make_sr(mixed_result, [dx_source])


def test_sr_needs_a_source(mixed_result: StudyResult) -> None:
    with pytest.raises(DraftError, match="at least one source"):
        make_sr(mixed_result, [])


def test_heatmap_sc_roundtrip(tmp_path: Path, dx_source: Any) -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = np.arange(64, dtype=np.uint8)[None, :] * 4
    rgb[10:20, 30:40, 1] = 255
    sc = make_heatmap_sc(dx_source, rgb)
    path = tmp_path / "sc.dcm"
    pydicom.dcmwrite(path, sc, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert back.SOPClassUID == SECONDARY_CAPTURE
    assert back.StudyInstanceUID == dx_source.StudyInstanceUID
    assert back.SeriesInstanceUID != dx_source.SeriesInstanceUID
    assert back.PatientID == "P001"
    assert back.PhotometricInterpretation == "RGB"
    assert back.SeriesDescription == HEATMAP_SERIES_DESCRIPTION
    assert "heatmap" in back.SeriesDescription.lower()
    assert DISCLAIMER in back.ImageComments
    np.testing.assert_array_equal(back.pixel_array, rgb)


@pytest.mark.parametrize("bad", [
    np.zeros((64, 64, 3), np.float32),
    np.zeros((64, 64), np.uint8),
    np.zeros((64, 64, 4), np.uint8),
])
def test_heatmap_rejects_bad_overlay(dx_source: Any, bad: np.ndarray) -> None:
    with pytest.raises(DraftError, match="uint8"):
        make_heatmap_sc(dx_source, bad)


def test_sr_keeps_latin1_patient_name(tmp_path: Path, mixed_result: StudyResult,
                                      dx_source: Any) -> None:
    src_path = tmp_path / "src.dcm"
    dx_source.SpecificCharacterSet = "ISO_IR 100"
    dx_source.PatientName = "Müller^Jürgen"
    dx_source.save_as(src_path, enforce_file_format=True)
    source = pydicom.dcmread(src_path)
    path = tmp_path / "sr.dcm"
    make_sr(mixed_result, [source]).save_as(path, enforce_file_format=True)
    back = pydicom.dcmread(path)
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.PatientName) == "Müller^Jürgen"


def test_signed_sr_codes_findings_in_snomed_and_is_verified_per_dsrdump(
        tmp_path: Path, dx_source: Any) -> None:
    import datetime as dt

    from radiolens.drafts import FindingScore, SignedRead

    from .conftest import make_result

    if not Path("/usr/bin/dsrdump").exists():
        pytest.skip("dcmtk's dsrdump is not installed (apt-get install dcmtk)")
    # a lower-case model label still finds its SNOMED CT code
    result = make_result(FindingScore("pneumonia", 0.91, 0.8, True),
                         FindingScore("Consolidation", 0.2, 0.5, False))
    read = SignedRead(reviewer="ada", signed_at=dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC),
                      text="Right lower lobe pneumonia.",
                      calls={"pneumonia": "present", "Consolidation": "uncertain"})
    path = tmp_path / "signed.dcm"
    make_sr(result, [dx_source], read=read).save_as(path, enforce_file_format=True)
    out = subprocess.run(["/usr/bin/dsrdump", str(path)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "Verification Flag   : VERIFIED" in out and "Completion Flag     : COMPLETE" in out
    assert "ada^" in out  # the verifying observer is the reviewer
    assert "(233604007,SCT,\"Pneumonia\")" in out
    assert "(95436008,SCT,\"Lung consolidation\")" in out
    assert "(82334004,SCT,\"Indeterminate\")" in out  # the reviewer's "uncertain"
    assert "Right lower lobe pneumonia." in out


def test_hl7_and_fhir_carry_snomed_codes() -> None:
    from radiolens.drafts import FindingScore, make_fhir_bundle, make_oru

    from .conftest import make_result

    result = make_result(FindingScore("pneumonia", 0.91, 0.8, True))
    draft = draft_report(result)
    assert "^233604007^Pneumonia^SCT" in make_oru(result, draft)
    obs = make_fhir_bundle(result, draft)["entry"][1]["resource"]
    assert obs["code"]["coding"][0] == {"system": "http://snomed.info/sct",
                                        "code": "233604007", "display": "Pneumonia"}
