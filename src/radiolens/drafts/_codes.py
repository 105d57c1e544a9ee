"""Codes shared by the SR, FHIR and HL7 builders.

Only SNOMED CT codes we are sure of are listed (most are also in pydicom's DICOM code
dictionary); other findings are sent as text or under the local coding scheme below.
"""

from __future__ import annotations

__all__ = ["LOCAL_SCHEME", "SNOMED_FINDINGS", "local_code"]

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
}


def local_code(name: str) -> str:
    """Return the local code value for a finding label (spaces become underscores)."""
    return "_".join(name.split()).upper()
