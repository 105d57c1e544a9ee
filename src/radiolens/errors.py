"""Exceptions raised by radiolens.

Every error a user can cause derives from :class:`RadiolensError` and also from the
builtin exception that matches it, so ``except ValueError`` keeps working for callers
that do not know radiolens. Messages say what went wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "DicomElementError",
    "DicomSendError",
    "DraftError",
    "ImageReadError",
    "InputFormatError",
    "InstanceRefused",
    "MissingDependencyError",
    "RadiolensError",
    "ReportParseError",
    "ReviewConflict",
    "RulesError",
    "SplitLeakError",
    "WorklistError",
]


class RadiolensError(Exception):
    """Root of every error radiolens raises on purpose."""


class ConfigError(RadiolensError, ValueError):
    """A setting, option or configuration file is invalid."""


class RulesError(ConfigError):
    """A labeller rules file (YAML) is malformed or refers to unknown names."""


class InputFormatError(RadiolensError, ValueError):
    """An input file cannot be read as the format it claims to be.

    Attributes:
        source: the file (and line, where known) that failed.
    """

    def __init__(self, message: str, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class ReportParseError(InputFormatError):
    """One report record cannot be used (missing id, empty text, bad encoding)."""


class ImageReadError(RadiolensError, OSError):
    """An image file is unreadable, truncated, or of a kind radiolens does not support."""


class CheckpointError(RadiolensError, ValueError):
    """A model checkpoint or run directory is missing, incomplete or inconsistent."""


class MissingDependencyError(RadiolensError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"this feature needs {package!r}, which is not installed; "
            f"install it with: pip install 'radiolens[{extra}]'"
        )


class DatasetError(InputFormatError):
    """A label table or data set layout is unusable (missing column, no images, bad label)."""


class SplitLeakError(DatasetError):
    """A patient appears on both sides of a train/validation/test split."""


class DicomElementError(InputFormatError):
    """A DICOM data element's value cannot be decoded (an unknown VR, a length that is not
    a whole number of values, a value its VR cannot hold).

    pydicom decodes a value when it is first read, so this comes from wherever it was
    read; :func:`radiolens.imaging.elements.element_value` raises it. Each boundary
    translates it once: :class:`ImageReadError` naming the file in the image reader,
    :class:`InstanceRefused` (0xC210) in the ingest path.

    Attributes:
        keyword: the element's keyword (``"PatientID"``).
        tag: the element's tag as ``(gggg,eeee)``, or ``""`` when the keyword has none.
        detail: what pydicom said.
        reason: a short reason (at most 64 characters, for a DICOM ErrorComment).
    """

    def __init__(self, keyword: str, tag: str, detail: str, source: str | None = None
                 ) -> None:
        self.keyword = keyword
        self.tag = tag
        self.detail = detail
        self.reason = f"{keyword} {tag} cannot be decoded".replace("  ", " ")[:64]
        super().__init__(
            f"DICOM element {keyword} {tag} cannot be decoded ({detail}); the file is "
            "corrupt or its sender wrote it wrongly: re-copy or re-send it, or ask the "
            "sender's vendor to fix the element".replace("  ", " "), source)


class DicomSendError(RadiolensError, ConnectionError):
    """A DICOM or HL7 peer could not be reached, or refused what was sent."""


class WorklistError(RadiolensError, RuntimeError):
    """The worklist database is unreachable or in a state radiolens cannot use."""


class DraftError(RadiolensError, ValueError):
    """A draft report (text, SR, FHIR, HL7) cannot be built from the given result."""


class InstanceRefused(RadiolensError, ValueError):
    """A DICOM instance radiolens refuses to store, with the DICOM status to answer.

    Raised by the one ingest path (:mod:`radiolens.receiver.ingest`); the SCP answers
    :attr:`status`, the HTTP upload a 4xx with :attr:`reason`.

    Attributes:
        status: the C-STORE failure status (e.g. ``0xA900``, ``0xC001``).
        reason: what is wrong with the instance, for the sender or the uploader.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ReviewConflict(RadiolensError, RuntimeError):
    """A review does not match the study's state: it was re-scored since the reviewer saw
    it, or it is signed already (amend instead). The API answers 409."""
