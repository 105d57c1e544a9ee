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
    "DicomSendError",
    "DraftError",
    "ImageReadError",
    "InputFormatError",
    "MissingDependencyError",
    "RadiolensError",
    "ReportParseError",
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


class DicomSendError(RadiolensError, ConnectionError):
    """A DICOM or HL7 peer could not be reached, or refused what was sent."""


class WorklistError(RadiolensError, RuntimeError):
    """The worklist database is unreachable or in a state radiolens cannot use."""


class DraftError(RadiolensError, ValueError):
    """A draft report (text, SR, FHIR, HL7) cannot be built from the given result."""
