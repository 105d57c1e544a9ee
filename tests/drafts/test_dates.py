"""Malformed header dates are left out of every output, with a warning that hides them."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from radiolens.drafts import FindingScore, draft_report, make_fhir_bundle, make_oru, make_sr

from .conftest import make_result

BAD = {"patient_birth_date": "00000000", "study_date": "20261399"}


def _result() -> Any:
    return make_result(FindingScore("Pneumonia", 0.8, 0.5, True), **BAD)


def test_bad_dates_are_dropped_with_a_warning_without_the_value(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="radiolens")
    result = _result()
    assert result.patient_birth_date == "" and result.study_date == ""
    assert "patient_birth_date is not a valid" in caplog.text
    assert "study_date is not a valid" in caplog.text
    assert "00000000" not in caplog.text and "20261399" not in caplog.text


def test_hl7_and_fhir_build_without_the_bad_dates() -> None:
    result = _result()
    draft = draft_report(result)
    oru = make_oru(result, draft)  # raised a plain ValueError from hl7apy before
    pid = next(seg for seg in oru.split("\r") if seg.startswith("PID|")).split("|")
    assert len(pid) <= 7 or pid[7] == ""
    assert "00000000" not in oru and "20261399" not in oru
    text = json.dumps(make_fhir_bundle(result, draft))
    assert "0000-00-00" not in text and "2026-13" not in text


def test_sr_leaves_a_bad_source_date_empty(dx_source: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    dx_source.PatientBirthDate = "00000000"
    dx_source.StudyDate = "20261399"
    result = make_result(FindingScore("Pneumonia", 0.8, 0.5, True))
    caplog.set_level(logging.WARNING, logger="radiolens")
    sr = make_sr(result, [dx_source], draft_report(result))
    assert sr.PatientBirthDate == "" and sr.StudyDate == ""
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("radiolens"))
    assert "00000000" not in ours and "PatientBirthDate is not a valid date" in ours
