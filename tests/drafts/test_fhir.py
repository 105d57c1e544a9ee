from __future__ import annotations

import base64
import copy
import json

import pytest

from radiolens import DISCLAIMER
from radiolens.drafts import StudyResult, draft_report, make_fhir_bundle, validate_fhir_bundle
from radiolens.errors import DraftError


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_bundle_validates_and_has_one_observation_per_finding(
        mixed_result: StudyResult) -> None:
    draft = draft_report(mixed_result)
    bundle = make_fhir_bundle(mixed_result, draft)
    json.dumps(bundle)  # JSON-able
    parsed = validate_fhir_bundle(json.dumps(bundle))
    assert parsed.type == "collection"
    (report,) = _resources(bundle, "DiagnosticReport")
    observations = _resources(bundle, "Observation")
    assert len(observations) == len(mixed_result.findings)
    assert report["status"] == "preliminary"
    assert all(o["status"] == "preliminary" for o in observations)
    assert report["category"][0]["coding"][0]["code"] == "RAD"
    assert report["code"]["coding"][0] == {"system": "http://loinc.org", "code": "18748-4",
                                           "display": "Diagnostic imaging study"}
    assert report["conclusion"] == draft.impression
    assert report["subject"]["identifier"]["value"] == "P001"
    assert report["identifier"][0]["value"] == "ACC001"
    form = report["presentedForm"][0]
    assert form["contentType"].startswith("text/plain")
    assert base64.b64decode(form["data"]).decode("utf-8") == draft.full_text
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert {r["reference"] for r in report["result"]} <= urls


def test_observation_content(mixed_result: StudyResult) -> None:
    bundle = make_fhir_bundle(mixed_result, draft_report(mixed_result))
    obs = {o["code"]["text"]: o for o in _resources(bundle, "Observation")}
    pneumonia = obs["Pneumonia"]
    assert pneumonia["valueQuantity"]["value"] == pytest.approx(0.87)
    assert pneumonia["valueQuantity"]["code"] == "1"
    assert pneumonia["interpretation"][0]["coding"][0]["code"] == "POS"
    assert pneumonia["code"]["coding"][0]["code"] == "233604007"
    assert DISCLAIMER in pneumonia["note"][0]["text"]
    thickening = obs["Pleural_Thickening"]
    assert thickening["interpretation"][0]["coding"][0]["code"] == "NEG"
    assert "coding" not in thickening["code"]  # no SNOMED code we are sure of: text only
    assert thickening["component"][0]["valueQuantity"]["value"] == pytest.approx(0.4)


def test_bundle_is_deterministic(mixed_result: StudyResult) -> None:
    draft = draft_report(mixed_result)
    assert make_fhir_bundle(mixed_result, draft) == make_fhir_bundle(mixed_result, draft)


def test_validate_rejects_bad_status_and_structure(mixed_result: StudyResult) -> None:
    bundle = make_fhir_bundle(mixed_result, draft_report(mixed_result))
    bad = copy.deepcopy(bundle)
    bad["entry"][0]["resource"]["status"] = "bogus"
    with pytest.raises(DraftError, match="status 'bogus'"):
        validate_fhir_bundle(bad)
    missing = copy.deepcopy(bundle)
    del missing["entry"][1]["resource"]["code"]
    with pytest.raises(DraftError, match="not valid"):
        validate_fhir_bundle(missing)
