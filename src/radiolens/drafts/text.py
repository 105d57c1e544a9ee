"""Preliminary report text in plain radiology language.

The draft is a starting point for the radiologist, who accepts or corrects it. It lists
flagged findings with a likelihood word chosen by how far the probability lies beyond the
operating threshold, then pertinent negatives for the findings scored but not flagged.
The output depends only on the :class:`~radiolens.drafts.model.StudyResult` (no clock, no
randomness), so the same result always gives the same text.

Example:
    >>> from datetime import datetime, timezone
    >>> from radiolens.drafts.model import FindingScore, StudyResult
    >>> r = StudyResult(study_instance_uid="1.2.3", patient_id="P1", model_name="cxr",
    ...                 model_version="1.0", scored_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
    ...                 findings=(FindingScore("Pneumonia", 0.1, 0.5, False),))
    >>> draft_report(r).impression
    'No acute cardiopulmonary abnormality detected by the AI model.'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from radiolens import DISCLAIMER
from radiolens.drafts.model import FindingScore, StudyResult

__all__ = [
    "DRAFT_HEADER",
    "NO_ACUTE_FINDING",
    "DraftReport",
    "draft_report",
    "human_name",
    "likelihood_phrase",
]

logger = logging.getLogger(__name__)

#: First line of every draft.
DRAFT_HEADER = "PRELIMINARY AI DRAFT — for radiologist review; not a final report."

#: Impression when the model flags nothing.
NO_ACUTE_FINDING = "No acute cardiopulmonary abnormality detected by the AI model."

#: Names that read better than the lower-cased label.
_HUMAN_NAMES = {
    "Abnormal": "abnormality",
    "Effusion": "pleural effusion",
    "Pleural Effusion": "pleural effusion",
    "Edema": "pulmonary edema",
    "Infiltration": "pulmonary infiltrate",
    "Mass": "pulmonary mass",
    "Nodule": "pulmonary nodule",
}

#: Labels that are not findings (a positive "No Finding" is not a pertinent positive).
_NOT_A_FINDING = frozenset({"No Finding"})

# Likelihood bands on the margin beyond the threshold (0 = at threshold, 1 = certainty).
_POSSIBLE_BELOW = 1.0 / 3.0
_PROBABLE_BELOW = 2.0 / 3.0


@dataclass(frozen=True)
class DraftReport:
    """A drafted preliminary report.

    Attributes:
        findings_text: the FINDINGS section body, one sentence per line.
        impression: the IMPRESSION section body.
        full_text: header, examination, findings, impression, model and disclaimer.
        disclaimer: :data:`radiolens.DISCLAIMER`.
    """

    findings_text: str
    impression: str
    full_text: str
    disclaimer: str = DISCLAIMER


def human_name(name: str) -> str:
    """Return the plain-language name of a finding label.

    ``"Pleural_Thickening"`` gives ``"pleural thickening"``, ``"Abnormal"`` gives
    ``"abnormality"``.
    """
    if name in _HUMAN_NAMES:
        return _HUMAN_NAMES[name]
    return " ".join(name.replace("_", " ").split()).lower()


def likelihood_phrase(finding: FindingScore) -> str:
    """Return the positive phrase for a flagged finding, capitalised, without a period.

    Within the first third of the headroom above the threshold: "Possible x"; within the
    second: "Probable x"; beyond: "Findings consistent with x".
    """
    noun = human_name(finding.name)
    margin = finding.margin
    if margin < _POSSIBLE_BELOW:
        return f"Possible {noun}"
    if margin < _PROBABLE_BELOW:
        return f"Probable {noun}"
    return f"Findings consistent with {noun}"


def _scores(f: FindingScore) -> str:
    return f"AI probability {f.probability:.2f}; operating threshold {f.threshold:.2f}"


def _iso_date(value: str) -> str:
    """``YYYYMMDD`` to ``YYYY-MM-DD``, or ``""`` when it is not a valid date."""
    if len(value) != 8 or not value.isdigit():
        return ""
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8])).isoformat()
    except ValueError:
        return ""


def draft_report(result: StudyResult) -> DraftReport:
    """Draft the preliminary report text for one study.

    Args:
        result: the model's result for the study.

    Returns:
        The draft; ``full_text`` starts with :data:`DRAFT_HEADER` and ends with the disclaimer.
    """
    positives = [f for f in result.flagged if f.name not in _NOT_A_FINDING]
    negatives = [f for f in result.not_flagged if f.name not in _NOT_A_FINDING]
    skipped = [f.name for f in result.findings if f.name in _NOT_A_FINDING]
    if skipped:
        logger.debug("not phrased in the draft text (not findings): %s", skipped)

    lines = [f"{likelihood_phrase(f)} ({_scores(f)})." for f in positives]
    negatives.sort(key=lambda f: (human_name(f.name), f.name))
    lines += [f"No radiographic evidence of {human_name(f.name)}." for f in negatives]
    if not positives:
        lines.append(NO_ACUTE_FINDING)
    findings_text = "\n".join(lines)

    if positives:
        impression = "\n".join(
            f"{i}. {likelihood_phrase(f)}." for i, f in enumerate(positives, start=1))
    else:
        impression = NO_ACUTE_FINDING

    exam = result.study_description.strip() or "Chest radiograph"
    when = _iso_date(result.study_date)
    parts = [DRAFT_HEADER, "", f"EXAMINATION: {exam}" + (f", {when}." if when else ".")]
    if result.accession_number.strip():
        parts.append(f"ACCESSION: {result.accession_number.strip()}")
    parts += ["", "FINDINGS:", findings_text, "", "IMPRESSION:", impression, ""]
    parts.append(f"Scored by AI model {result.model_name} {result.model_version} at "
                 f"{result.scored_at.isoformat(timespec='seconds')}.")
    parts.append(DISCLAIMER)
    full_text = "\n".join(parts)
    logger.debug("drafted report for study %s: %d flagged, %d negative",
                 result.study_instance_uid, len(positives), len(negatives))
    return DraftReport(findings_text=findings_text, impression=impression, full_text=full_text,
                       disclaimer=DISCLAIMER)
