"""radiolens: a chest X-ray triage assistant for radiology teams.

It mines labels from reports, trains and evaluates classifiers, and runs as a triage
service. It assists radiologists; it never replaces them.

Only the light API is imported here, so ``import radiolens`` needs no torch::

    from radiolens import label_report
    label_report("No pneumothorax. Small left effusion.").labels["Effusion"]
"""

from __future__ import annotations

import logging

from radiolens.findings import Certainty, Finding
from radiolens.reports import Evidence, ReportLabeler, ReportLabels, label_report

__version__ = "0.1.0"

#: Shown with every output a person reads: radiolens assists and never replaces.
DISCLAIMER = (
    "AI-generated output for review by a qualified radiologist. radiolens assists with "
    "reading; it does not make diagnoses and never replaces the radiologist."
)

__all__ = [
    "DISCLAIMER",
    "Certainty",
    "Evidence",
    "Finding",
    "ReportLabeler",
    "ReportLabels",
    "__version__",
    "label_report",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
