"""Inputs of the draft builders: one study's model scores.

The worker fills a :class:`StudyResult` from the DICOM header and the model output; every
drafts builder (text, SR, FHIR, HL7) reads only this object, so they cannot disagree.

Example:
    >>> from datetime import datetime, timezone
    >>> r = StudyResult(study_instance_uid="1.2.3", patient_id="P1", model_name="cxr",
    ...                 model_version="1.0", scored_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
    ...                 findings=(FindingScore("Pneumonia", 0.87, 0.5, True, urgency=2),))
    >>> [f.name for f in r.flagged]
    ['Pneumonia']
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from radiolens.errors import DraftError

__all__ = ["FINDING_CALLS", "FindingScore", "SignedRead", "StudyResult", "result_from_header",
           "valid_dicom_date"]

logger = logging.getLogger(__name__)

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def valid_dicom_date(value: str) -> bool:
    """Whether ``value`` is a real calendar date written ``YYYYMMDD`` (DICOM DA, HL7 DT).

    Example:
        >>> valid_dicom_date("20240229"), valid_dicom_date("00000000"), valid_dicom_date("")
        (True, False, False)
    """
    if len(value) != 8 or not value.isdigit():
        return False
    try:
        date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class FindingScore:
    """The model's score for one finding.

    Attributes:
        name: finding name in ChestX-ray14 spelling (``"Pleural_Thickening"``) or
            ``"Abnormal"`` for a normal-vs-abnormal model.
        probability: model probability in [0, 1].
        threshold: operating threshold in [0, 1] the call was made against.
        flagged: the model's call (positive) at that threshold.
        urgency: ordering weight for flagged findings; higher is more urgent.
    """

    name: str
    probability: float
    threshold: float
    flagged: bool
    urgency: int = 1

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise DraftError("a FindingScore needs a non-empty finding name")
        for field_name in ("probability", "threshold"):
            raw = getattr(self, field_name)
            if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
                raise DraftError(f"{self.name}: {field_name} must be a number, got {raw!r}")
            value = float(raw)  # numpy scalars become plain floats (JSON, HL7, DICOM)
            if math.isnan(value) or not 0.0 <= value <= 1.0:
                raise DraftError(
                    f"{self.name}: {field_name} must lie in [0, 1], got {raw!r}; "
                    "pass probabilities, not logits or percentages")
            object.__setattr__(self, field_name, value)
        object.__setattr__(self, "flagged", bool(self.flagged))
        object.__setattr__(self, "urgency", int(self.urgency))

    @property
    def margin(self) -> float:
        """How far beyond the threshold the probability lies, as a share of the headroom.

        0 at the threshold, 1 at probability 1; negative below the threshold.
        """
        headroom = 1.0 - self.threshold
        if headroom <= 0.0:
            return 1.0 if self.probability >= self.threshold else -1.0
        return (self.probability - self.threshold) / headroom


@dataclass(frozen=True, kw_only=True)
class StudyResult:
    """The model's result for one study, with the header fields the outputs need.

    Dates are DICOM/HL7 style ``YYYYMMDD`` strings, the patient name is a DICOM person
    name (``"Doe^Jane"``) and ``scored_at`` must be timezone-aware.

    Attributes:
        study_instance_uid: DICOM StudyInstanceUID of the scored study.
        patient_id: hospital patient id (DICOM PatientID).
        findings: one score per finding; names must be unique.
        priority: triage priority assigned by the worker (higher is sooner).
        scored_at: when the model scored the study.
        cautions: sentences every output must carry with the findings, such as "AI
            attention outside the lungs: check" or "Check image: ..." (the worker's
            lung checks); empty when there is nothing to warn about.
    """

    study_instance_uid: str
    patient_id: str
    patient_name: str = ""
    patient_sex: str = ""
    patient_birth_date: str = ""
    accession_number: str = ""
    study_date: str = ""
    study_description: str = ""
    model_name: str
    model_version: str
    findings: tuple[FindingScore, ...]
    priority: int = 0
    scored_at: datetime
    cautions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("patient_birth_date", "study_date"):
            value = getattr(self, name).strip()
            if value and not valid_dicom_date(value):  # never log the value: it is PHI
                logger.warning("study %s: %s is not a valid YYYYMMDD date; left out of the "
                               "outputs", self.study_instance_uid, name)
                value = ""
            object.__setattr__(self, name, value)
        uid = self.study_instance_uid
        if not uid or len(uid) > 64 or not _UID.match(uid):
            raise DraftError(
                f"study_instance_uid {uid!r} is not a DICOM UID (digits and dots, at most 64 "
                "characters); pass the StudyInstanceUID of the scored study")
        if not self.patient_id.strip():
            raise DraftError("patient_id is empty; a draft must name the patient it belongs to")
        if not self.model_name.strip() or not self.model_version.strip():
            raise DraftError("model_name and model_version are required for traceability")
        if not isinstance(self.findings, tuple):
            object.__setattr__(self, "findings", tuple(self.findings))
        if not self.findings:
            raise DraftError(
                "a StudyResult needs at least one FindingScore; without scores there is "
                "nothing to draft (do not report 'no abnormality' for an unscored study)")
        seen: set[str] = set()
        for f in self.findings:
            if not isinstance(f, FindingScore):
                raise DraftError(f"findings must be FindingScore objects, got {type(f).__name__}")
            if f.name in seen:
                raise DraftError(f"finding {f.name!r} is scored twice; names must be unique")
            seen.add(f.name)
        if self.scored_at.tzinfo is None or self.scored_at.utcoffset() is None:
            raise DraftError(
                "scored_at must be timezone-aware, e.g. datetime.now(timezone.utc)")
        if isinstance(self.cautions, str):
            raise DraftError("cautions must be a sequence of sentences, not one string")
        object.__setattr__(self, "cautions",
                           tuple(c.strip() for c in self.cautions if c and c.strip()))

    @property
    def flagged(self) -> tuple[FindingScore, ...]:
        """The flagged findings, most urgent first (then larger margin, then name)."""
        hits = [f for f in self.findings if f.flagged]
        return tuple(sorted(hits, key=lambda f: (-f.urgency, -f.margin, f.name)))

    @property
    def not_flagged(self) -> tuple[FindingScore, ...]:
        """The scored findings the model did not flag, sorted by name."""
        return tuple(sorted((f for f in self.findings if not f.flagged), key=lambda f: f.name))


#: A reviewer's call on one finding.
FINDING_CALLS: tuple[str, ...] = ("present", "absent", "uncertain")


@dataclass(frozen=True)
class SignedRead:
    """A radiologist's signed read of a study: what the final SR and FHIR report carry.

    Attributes:
        reviewer: the signed-in user who signed (the verifying observer).
        signed_at: when (timezone-aware).
        text: the report as signed.
        calls: finding -> ``present`` / ``absent`` / ``uncertain``.
        version: 1 for the first read, 2 and up for amendments.
    """

    reviewer: str
    signed_at: datetime
    text: str
    calls: dict[str, str]
    version: int = 1

    def __post_init__(self) -> None:
        if not self.reviewer.strip():
            raise DraftError("a signed read needs the reviewer's name")
        if not self.text.strip():
            raise DraftError("a signed read needs the report text")
        bad = {k: v for k, v in self.calls.items() if v not in FINDING_CALLS}
        if bad:
            raise DraftError(f"unknown finding calls {bad}; use {', '.join(FINDING_CALLS)}")
        if self.signed_at.tzinfo is None:
            raise DraftError("signed_at must be timezone-aware")


def result_from_header(header: Any, *, study_uid: str, model_name: str, model_version: str,
                       findings: dict[str, float], thresholds: dict[str, float],
                       flags: list[str], priority: int, scored_at: datetime,
                       urgency: dict[str, int] | None = None,
                       cautions: tuple[str, ...] = ()) -> StudyResult:
    """A :class:`StudyResult` from a scored image's DICOM header and the model's scores.

    The worker calls it when it scores a study; the API calls it again, from the stored
    header and result, when a radiologist signs the read.
    """
    def text(keyword: str) -> str:
        value = header.get(keyword, "")
        return "" if value is None else str(value)

    urgency = urgency or {}
    return StudyResult(
        study_instance_uid=study_uid, patient_id=text("PatientID") or "UNKNOWN",
        patient_name=text("PatientName"), patient_sex=text("PatientSex"),
        patient_birth_date=text("PatientBirthDate"), accession_number=text("AccessionNumber"),
        study_date=text("StudyDate"), study_description=text("StudyDescription"),
        model_name=model_name, model_version=model_version,
        findings=tuple(FindingScore(n, float(findings[n]), float(thresholds.get(n, 0.5)),
                                    n in flags, urgency.get(n, 1)) for n in findings),
        priority=priority, scored_at=scored_at, cautions=tuple(cautions))
