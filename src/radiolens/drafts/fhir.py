"""FHIR R4 output: a collection Bundle with a preliminary DiagnosticReport and Observations.

fhir.resources 8 has no pure R4 package; R4B (4.3.0) has the same JSON for
DiagnosticReport and Observation, so the R4B models build and validate the Bundle.
Those models check structure and cardinality but not required value sets, so the status
codes are checked here as well (:func:`validate_fhir_bundle`).

Resource ids are UUIDs derived from the study, model and finding, so the same result
always gives the same Bundle.

Example:
    >>> bundle = make_fhir_bundle(result, draft_report(result))   # doctest: +SKIP
    >>> validate_fhir_bundle(bundle).type                        # doctest: +SKIP
    'collection'
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

from radiolens import DISCLAIMER
from radiolens.drafts._codes import snomed_code
from radiolens.drafts.model import FindingScore, SignedRead, StudyResult
from radiolens.drafts.text import DraftReport, _iso_date, human_name
from radiolens.errors import DraftError

__all__ = ["make_fhir_bundle", "validate_fhir_bundle"]

logger = logging.getLogger(__name__)

_SNOMED = "http://snomed.info/sct"
_LOINC = "http://loinc.org"
_UCUM = "http://unitsofmeasure.org"
_V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_DICOM_UID = "urn:dicom:uid"
_NAMESPACE = uuid.UUID("6f1c4a52-5d0b-4c51-9d43-0d6c1f7e2a10")  # radiolens FHIR ids

#: Allowed status codes (fhir.resources does not check required value sets).
_REPORT_STATUSES = frozenset({"registered", "partial", "preliminary", "final", "amended",
                              "corrected", "appended", "cancelled", "entered-in-error",
                              "unknown"})
_OBSERVATION_STATUSES = frozenset({"registered", "preliminary", "final", "amended", "corrected",
                                   "cancelled", "entered-in-error", "unknown"})


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def _subject(result: StudyResult, system: str | None) -> dict[str, Any]:
    identifier: dict[str, Any] = {"value": result.patient_id}
    if system:
        identifier["system"] = system
    return {"type": "Patient", "identifier": identifier}


#: The reviewer's call -> v3 ObservationInterpretation (POS, NEG, IND).
_CALL_INTERPRETATION = {"present": ("POS", "Positive"), "absent": ("NEG", "Negative"),
                        "uncertain": ("IND", "Indeterminate")}


def _observation(result: StudyResult, f: FindingScore, obs_id: str, subject: dict[str, Any],
                 study_ref: dict[str, Any], read: SignedRead | None = None) -> dict[str, Any]:
    code: dict[str, Any] = {"text": f.name}
    coded = snomed_code(f.name)
    if coded is not None:
        code["coding"] = [{"system": _SNOMED, "code": coded[0], "display": coded[1]}]
    call = read.calls.get(f.name) if read is not None else None
    if call is not None:
        pos = _CALL_INTERPRETATION[call]
        said = f"Radiologist's call: {call} (AI: {'flagged' if f.flagged else 'not flagged'})"
    else:
        pos = ("POS", "Positive") if f.flagged else ("NEG", "Negative")
        said = f"AI call: {'flagged' if f.flagged else 'not flagged'}"
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": obs_id,
        "status": _final_status(read) if call is not None else "preliminary",
        "category": [{"coding": [{"system": _OBS_CATEGORY, "code": "imaging",
                                  "display": "Imaging"}]}],
        "code": code,
        "subject": subject,
        "issued": result.scored_at.isoformat(),
        "valueQuantity": {"value": f.probability, "unit": "probability", "system": _UCUM,
                          "code": "1"},
        "interpretation": [{"coding": [{"system": _INTERPRETATION, "code": pos[0],
                                        "display": pos[1]}],
                            "text": said}],
        "method": {"text": f"AI model {result.model_name} {result.model_version}"},
        "device": {"display": f"radiolens AI model {result.model_name} {result.model_version}"},
        "derivedFrom": [study_ref],
        "component": [{"code": {"text": "AI operating threshold"},
                       "valueQuantity": {"value": f.threshold, "unit": "probability",
                                         "system": _UCUM, "code": "1"}}],
        "note": [{"text": f"{human_name(f.name).capitalize()}: AI probability "
                          f"{f.probability:.2f}. {DISCLAIMER}"}],
    }
    when = _iso_date(result.study_date)
    if when:
        obs["effectiveDateTime"] = when
    return obs


def _final_status(read: SignedRead | None) -> str:
    if read is None:
        return "preliminary"
    return "amended" if read.version > 1 else "final"


def make_fhir_bundle(result: StudyResult, draft: DraftReport, *,
                     patient_identifier_system: str | None = None,
                     read: SignedRead | None = None) -> dict[str, Any]:
    """Build a FHIR R4 collection Bundle for one study.

    With ``read`` (a radiologist's signed read) the DiagnosticReport is ``final`` (or
    ``amended`` for a later version), its text and conclusion are the reviewer's, the
    performer is the reviewer, and each Observation carries the reviewer's call.

    The Bundle holds one DiagnosticReport (status ``preliminary``, category RAD, LOINC
    18748-4, conclusion = impression, presentedForm = the full draft as text/plain) and one
    Observation per finding (probability as ``valueQuantity`` with UCUM ``1``, threshold as
    a component, interpretation POS/NEG by the flag, the disclaimer as a note).

    Args:
        result: the model's result.
        draft: the draft text, usually ``draft_report(result)``.
        patient_identifier_system: the hospital's identifier system URI for patient ids.

    Returns:
        The Bundle as a JSON-able dict, validated with fhir.resources (R4B).

    Raises:
        DraftError: the Bundle does not validate.
    """
    subject = _subject(result, patient_identifier_system)
    study_ref = {"type": "ImagingStudy", "identifier": {
        "system": _DICOM_UID, "value": f"urn:oid:{result.study_instance_uid}"}}
    key = (result.study_instance_uid, result.model_name, result.model_version,
           result.scored_at.isoformat(), *((str(read.version),) if read else ()))
    report_id = _uuid(*key, "DiagnosticReport")
    observations = [_observation(result, f, _uuid(*key, "Observation", f.name), subject,
                                 study_ref, read) for f in result.findings]
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "status": _final_status(read),
        "category": [{"coding": [{"system": _V2_0074, "code": "RAD", "display": "Radiology"}]}],
        "code": {"coding": [{"system": _LOINC, "code": "18748-4",
                             "display": "Diagnostic imaging study"}],
                 "text": result.study_description.strip() or "Chest radiograph (AI draft)"},
        "subject": subject,
        "issued": result.scored_at.isoformat(),
        "imagingStudy": [study_ref],
        "result": [{"reference": f"urn:uuid:{o['id']}", "display": o["code"]["text"]}
                   for o in observations],
        "conclusion": draft.impression,
        "presentedForm": [{
            "contentType": "text/plain; charset=utf-8",
            "language": "en",
            "title": "Preliminary AI draft report (for radiologist review)",
            "data": base64.b64encode(draft.full_text.encode("utf-8")).decode("ascii"),
        }],
    }
    if read is not None:
        report["issued"] = read.signed_at.isoformat()
        report["performer"] = [{"display": read.reviewer}]
        report["conclusion"] = read.text.strip().splitlines()[-1][:1000]
        report["presentedForm"] = [{
            "contentType": "text/plain; charset=utf-8", "language": "en",
            "title": f"Radiology report signed by {read.reviewer} (version {read.version})",
            "data": base64.b64encode(read.text.encode("utf-8")).decode("ascii")}]
    if result.accession_number.strip():
        report["identifier"] = [{
            "type": {"coding": [{"system": _V2_0203, "code": "ACSN",
                                 "display": "Accession ID"}]},
            "value": result.accession_number.strip()}]
    when = _iso_date(result.study_date)
    if when:
        report["effectiveDateTime"] = when
    resources = [report, *observations]
    bundle = {
        "resourceType": "Bundle",
        "id": _uuid(*key, "Bundle"),
        "type": "collection",
        "timestamp": result.scored_at.isoformat(),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }
    parsed = validate_fhir_bundle(bundle)
    logger.debug("built FHIR bundle %s with %d observations", bundle["id"], len(observations))
    out: dict[str, Any] = json.loads(parsed.model_dump_json(exclude_none=True))
    return out


def validate_fhir_bundle(data: dict[str, Any] | str) -> Bundle:
    """Parse a Bundle (dict or JSON text) with fhir.resources R4B and check status codes.

    Args:
        data: the Bundle as returned by :func:`make_fhir_bundle`, or its JSON.

    Returns:
        The parsed ``fhir.resources.R4B.bundle.Bundle``.

    Raises:
        DraftError: the Bundle is not valid FHIR R4B, or a status code is unknown.
    """
    try:
        payload = json.loads(data) if isinstance(data, str) else data
        bundle = Bundle.model_validate(payload)
    except (ValidationError, ValueError, TypeError) as exc:
        raise DraftError(f"the FHIR Bundle is not valid R4/R4B: {exc}") from exc
    for entry in bundle.entry or []:
        res = entry.resource
        if res is None:
            continue
        kind = res.get_resource_type()
        allowed = {"DiagnosticReport": _REPORT_STATUSES,
                   "Observation": _OBSERVATION_STATUSES}.get(kind)
        status = getattr(res, "status", None)
        if allowed is not None and status not in allowed:
            raise DraftError(f"{kind}/{res.id} has status {status!r}; "
                             f"choose from: {', '.join(sorted(allowed))}")
    return bundle
