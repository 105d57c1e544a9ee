"""Exceptions raised by radiolens.

Every error a user can cause derives from :class:`RadiolensError` and also from the
builtin exception that matches it, so ``except ValueError`` keeps working for callers
that do not know radiolens. Messages say what went wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ImageReadError",
    "InputFormatError",
    "MissingDependencyError",
    "RadiolensError",
    "ReportParseError",
    "RulesError",
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
