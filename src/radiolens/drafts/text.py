"""Preliminary report text in plain radiology language.

The draft is a starting point for the radiologist, who accepts or corrects it. It lists
flagged findings with a likelihood word chosen by how far the probability lies beyond the
operating threshold, then the result's cautions (for example "AI attention outside the
lungs: check" when a flagged finding's heatmap lies mostly outside the lungs, or "Check
image: ..." when the lung mask is implausible), then pertinent negatives for the findings
scored but not flagged. The output depends only on the
:class:`~radiolens.drafts.model.StudyResult` (no clock, no randomness), so the same result
always gives the same text.

Example:
    >>> from datetime import datetime, timezone
    >>> from radiolens.drafts.model import FindingScore, StudyResult
    >>> r = StudyResult(study_instance_uid="1.2.3", patient_id="P1", model_name="cxr",
    ...                 model_version="1.0", scored_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
    ...                 findings=(FindingScore("Pneumonia", 0.1, 0.5, False),))
    >>> draft_report(r).impression
    'No pneumonia detected by the AI model (this model assesses pneumonia only).'
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
    "nothing_detected",
    "percent",
]

logger = logging.getLogger(__name__)

#: First line of every draft.
DRAFT_HEADER = "PRELIMINARY AI DRAFT — for radiologist review; not a final report."

#: Impression when a normal-vs-abnormal model flags nothing. A model of specific findings
#: says which findings it assessed instead (:func:`nothing_detected`): it cannot rule out
#: what it never looked for.
NO_ACUTE_FINDING = "No acute cardiopulmonary abnormality detected by the AI model."
#: Labels that assess the whole image (a normal-vs-abnormal model).
_WHOLE_IMAGE = frozenset({"Abnormal", "abnormal"})
#: Findings named one by one in the "nothing detected" sentence; more are counted.
_NAMED_AT_MOST = 4

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


def percent(p: float) -> str:
    """A probability as a whole percentage, capped so that it never reads as certainty:
    ``>99 %`` and ``<1 %`` at the ends."""
    if p > 0.99:
        return ">99 %"
    if p < 0.01:
        return "<1 %"
    return f"{round(p * 100):d} %"


def _scores(f: FindingScore) -> str:
    return f"AI probability {percent(f.probability)}; operating threshold {percent(f.threshold)}"


def _sentence(text: str) -> str:
    """``text`` ending with a full stop (a caution may be given with or without one)."""
    return text if text.endswith((".", "!", "?")) else text + "."


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def nothing_detected(findings: tuple[FindingScore, ...]) -> str:
    """The impression when nothing is flagged, true to what the model assessed.

    A normal-vs-abnormal model gives :data:`NO_ACUTE_FINDING`; a pneumonia-only model
    "No pneumonia detected by the AI model (this model assesses pneumonia only)."
    """
    names = [f.name for f in findings if f.name not in _NOT_A_FINDING]
    if not names or any(n in _WHOLE_IMAGE for n in names):
        return NO_ACUTE_FINDING
    human = sorted({human_name(n) for n in names})
    if len(human) > _NAMED_AT_MOST:
        return (f"None of the {len(human)} findings this model assesses was detected by the "
                f"AI model ({', '.join(human)}); it does not assess other abnormalities.")
    only = human[0] if len(human) == 1 else "these findings"
    return f"No {_join(human)} detected by the AI model (this model assesses {only} only)."


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
    lines += [_sentence(c) for c in result.cautions]
    negatives.sort(key=lambda f: (human_name(f.name), f.name))
    lines += [f"No radiographic evidence of {human_name(f.name)}." for f in negatives]
    if not positives:
        lines.append(nothing_detected(result.findings))
    findings_text = "\n".join(lines)

    if positives:
        impression = "\n".join(
            f"{i}. {likelihood_phrase(f)}." for i, f in enumerate(positives, start=1))
    else:
        impression = nothing_detected(result.findings)

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
