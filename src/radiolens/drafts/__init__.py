"""Preliminary AI drafts for the radiologist: report text, DICOM SR, FHIR and HL7 v2.

Every output is marked as a preliminary AI draft and carries :data:`radiolens.DISCLAIMER`:
radiolens assists the radiologist and never replaces them.

Example:
    >>> from radiolens.drafts import draft_report            # doctest: +SKIP
    >>> print(draft_report(result).full_text)                 # doctest: +SKIP

The DICOM (``make_sr``, ``make_heatmap_sc``, ``make_lung_seg``), FHIR and HL7 builders
import highdicom, fhir.resources and hl7apy; they are loaded on first use, so the text
drafts need none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radiolens.drafts.model import FindingScore, SignedRead, StudyResult
from radiolens.drafts.text import DRAFT_HEADER, NO_ACUTE_FINDING, DraftReport, draft_report

if TYPE_CHECKING:
    from radiolens.drafts.fhir import make_fhir_bundle, validate_fhir_bundle
    from radiolens.drafts.hl7 import make_oru, mllp_frame, mllp_unframe, parse_oru, send_mllp
    from radiolens.drafts.seg import make_lung_seg
    from radiolens.drafts.sr import make_heatmap_sc, make_sr

__all__ = [
    "DRAFT_HEADER",
    "NO_ACUTE_FINDING",
    "DraftReport",
    "FindingScore",
    "SignedRead",
    "StudyResult",
    "draft_report",
    "make_fhir_bundle",
    "make_heatmap_sc",
    "make_lung_seg",
    "make_oru",
    "make_sr",
    "mllp_frame",
    "mllp_unframe",
    "parse_oru",
    "send_mllp",
    "validate_fhir_bundle",
]

#: Extra that installs each lazily imported module's dependencies.
_EXTRAS = {"sr": "dicom", "seg": "dicom", "fhir": "serve", "hl7": "serve"}

_LAZY = {
    "make_sr": "sr", "make_heatmap_sc": "sr", "make_lung_seg": "seg",
    "make_fhir_bundle": "fhir", "validate_fhir_bundle": "fhir",
    "make_oru": "hl7", "parse_oru": "hl7", "mllp_frame": "hl7", "mllp_unframe": "hl7",
    "send_mllp": "hl7",
}


def __getattr__(name: str) -> Any:
    """Import the DICOM, FHIR and HL7 builders on first use."""
    if name in _LAZY:
        import importlib

        from radiolens.errors import MissingDependencyError

        try:
            module = importlib.import_module(f"radiolens.drafts.{_LAZY[name]}")
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith("radiolens"):
                raise MissingDependencyError(exc.name, _EXTRAS[_LAZY[name]]) from exc
            raise
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'radiolens.drafts' has no attribute {name!r}")
