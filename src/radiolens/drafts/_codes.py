"""Codes shared by the SR, FHIR and HL7 builders.

Only SNOMED CT codes we are sure of are listed (several are also in pydicom's DICOM code
dictionary); other findings are sent under the local coding scheme below, and as text.
Look-ups ignore case, spaces and underscores, so a model's ``pneumonia`` label and the
ChestX-ray14 ``Pleural_Thickening`` spelling find their codes. RadLex is not used: no
RadLex release is shipped with radiolens to check identifiers against.
"""

from __future__ import annotations

__all__ = ["LOCAL_SCHEME", "SNOMED_FINDINGS", "local_code", "snomed_code"]

#: Local (private) coding scheme designator; DICOM and HL7 reserve the "99" prefix for these.
LOCAL_SCHEME = "99RADIOLENS"

#: Finding label -> (SNOMED CT code, display).
SNOMED_FINDINGS: dict[str, tuple[str, str]] = {
    "Pneumothorax": ("36118008", "Pneumothorax"),
    "Effusion": ("60046008", "Pleural effusion"),
    "Pleural Effusion": ("60046008", "Pleural effusion"),
    "Edema": ("19242006", "Pulmonary edema"),
    "Cardiomegaly": ("287272002", "Cardiomegaly"),
    "Pneumonia": ("233604007", "Pneumonia"),
    "Atelectasis": ("46621007", "Atelectasis"),
    "Consolidation": ("95436008", "Lung consolidation"),
    "Emphysema": ("87433001", "Pulmonary emphysema"),
    "Fibrosis": ("51615001", "Fibrosis of lung"),
    "Hernia": ("84089009", "Hiatal hernia"),
}


def _key(name: str) -> str:
    return "".join(name.replace("_", " ").split()).lower()


_BY_KEY = {_key(k): v for k, v in SNOMED_FINDINGS.items()}


def snomed_code(name: str) -> tuple[str, str] | None:
    """``(code, display)`` of a finding label in SNOMED CT, or None when not listed."""
    return _BY_KEY.get(_key(name))


def local_code(name: str) -> str:
    """Return the local code value for a finding label (spaces become underscores)."""
    return "_".join(name.split()).upper()
