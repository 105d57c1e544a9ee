"""De-identification of DICOM files for sharing outside the hospital.

Needs the ``privacy`` extra (dicognito, pytesseract) and, for the burned-in text check,
the Tesseract program (``apt-get install tesseract-ocr``). Imports no torch.

Example:
    >>> from radiolens.privacy import Deidentifier
    >>> report = Deidentifier(salt="study-42").load().run("in/", "out/")  # doctest: +SKIP
    >>> report.flagged                                                      # doctest: +SKIP
    []
"""

from __future__ import annotations

from radiolens.privacy.deid import (
    REPORT_CSV,
    REPORT_JSON,
    Deidentifier,
    DeidentifyReport,
    FileOutcome,
    check_paths,
)
from radiolens.privacy.ocr import OcrResult, OcrUnavailableError, TextDetector

__all__ = [
    "REPORT_CSV",
    "REPORT_JSON",
    "Deidentifier",
    "DeidentifyReport",
    "FileOutcome",
    "OcrResult",
    "OcrUnavailableError",
    "TextDetector",
    "check_paths",
]
