"""Log records that cannot forge lines, flood the log or leak patient identity.

A DICOM header is untrusted input: a UID can hold a newline (forging a log line), an AE
title an ANSI escape, a "UID" can be 100 KB long. :class:`SafeLogFilter` makes every
record one bounded line:

* control characters (C0, DEL, C1, Unicode line/paragraph separators and bidi
  overrides) are written as escapes (``\\n``, ``\\x1b``, ``\\u202e``);
* each argument is cut to :data:`MAX_VALUE_CHARS` characters and the whole message to
  :data:`MAX_MESSAGE_CHARS`, with a ``...[N chars cut]`` marker;
* person names and identifiers (pydicom ``PersonName`` values, data elements of VR PN
  or of a patient-identity keyword, whole datasets) are replaced by ``<redacted>``.

The filter works on the record, so it suits any formatter. Install it on the *handler*
(:func:`install_log_filter`): a filter on a logger does not see records propagated from
its children. This module is a leaf; it imports nothing from radiolens.

Example:
    >>> handler = logging.StreamHandler()
    >>> install_log_filter(handler)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_VALUE_CHARS",
    "PHI_KEYWORDS",
    "SafeLogFilter",
    "escape_control",
    "install_log_filter",
    "relative_to",
    "scrub_paths",
    "setup_logging",
]

#: Longest argument value kept in a log message, in characters.
MAX_VALUE_CHARS = 200
#: Longest log message kept, in characters (after the arguments are cut).
MAX_MESSAGE_CHARS = 2000
#: DICOM keywords whose values identify a person and are never logged.
PHI_KEYWORDS = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "OtherPatientIDs",
    "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName", "PatientAddress",
    "PatientTelephoneNumbers", "PatientMotherBirthName", "IssuerOfPatientID",
    "MedicalRecordLocator", "ReferringPhysicianName", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "RequestingPhysician",
})
REDACTED = "<redacted>"

_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_ESCAPES.update({c: f"\\u{c:04x}" for c in (0x2028, 0x2029, *range(0x202A, 0x202F),
                                            *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)})


def escape_control(text: str) -> str:
    r"""Write control characters of ``text`` as escapes, so it stays on one line.

    Example:
        >>> escape_control("1.2.3\nERROR forged")
        '1.2.3\\nERROR forged'
    """
    return text.translate(_ESCAPES)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} chars cut]"


def _is_identity(value: Any) -> bool:
    """Whether ``value`` is a pydicom person name, identity element or dataset."""
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    if not module.startswith("pydicom"):
        return False
    name = cls.__name__
    if name == "PersonName" or name in ("Dataset", "FileDataset"):
        return True
    if name in ("DataElement", "RawDataElement"):
        vr = getattr(value, "VR", None)
        keyword = getattr(value, "keyword", None)
        return vr == "PN" or keyword in PHI_KEYWORDS
    return False


class SafeLogFilter(logging.Filter):
    """Make each record one bounded line with no person names or identifiers.

    Args:
        max_value_chars: cut each argument to this many characters.
        max_message_chars: cut the whole message to this many characters.
    """

    def __init__(self, max_value_chars: int = MAX_VALUE_CHARS,
                 max_message_chars: int = MAX_MESSAGE_CHARS) -> None:
        super().__init__()
        self.max_value_chars = max_value_chars
        self.max_message_chars = max_message_chars

    def _clean(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if _is_identity(value):
            return REDACTED
        try:
            text = value if isinstance(value, str) else str(value)
        except Exception:  # a broken __str__: let logging report it as usual
            return value
        if len(text) > self.max_value_chars:
            return _cut(text, self.max_value_chars)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record.msg`` (arguments merged in) and clear ``record.args``."""
        args = record.args
        try:
            if isinstance(args, Mapping):
                record.args = {k: self._clean(v) for k, v in args.items()}
            elif args:
                record.args = tuple(self._clean(v) for v in args)
            message = record.getMessage()
        except Exception:  # a bad format string: logging's own error handling applies
            record.args = args
            return True
        record.msg = escape_control(_cut(message, self.max_message_chars))
        record.args = None
        return True


def install_log_filter(target: logging.Handler | logging.Logger) -> SafeLogFilter:
    """Add a :class:`SafeLogFilter` to a handler (preferred) or a logger, once.

    On a logger it also goes on each of the logger's handlers, since a logger's own
    filters do not see records propagated from child loggers.

    Returns:
        The filter in place (an existing one is reused).

    Example:
        >>> install_log_filter(logging.getLogger("radiolens").handlers[0])  # doctest: +SKIP
    """
    def add(obj: logging.Handler | logging.Logger) -> SafeLogFilter:
        for existing in obj.filters:
            if isinstance(existing, SafeLogFilter):
                return existing
        new = SafeLogFilter()
        obj.addFilter(new)
        return new

    installed = add(target)
    if isinstance(target, logging.Logger):
        for handler in target.handlers:
            add(handler)
    return installed


def relative_to(path: str | os.PathLike[str], base: str | os.PathLike[str]) -> str:
    """``path`` relative to ``base`` (the data dir) when under it, else its name only.

    Example:
        >>> relative_to("/srv/radiolens/dicom/1.2/3.dcm", "/srv/radiolens")
        'dicom/1.2/3.dcm'
    """
    p, b = Path(path), Path(base)
    try:
        return p.resolve().relative_to(b.resolve()).as_posix()
    except (ValueError, OSError):
        try:
            return p.relative_to(b).as_posix()
        except ValueError:
            return p.name


def scrub_paths(text: str, base: str | os.PathLike[str]) -> str:
    """Replace absolute paths under ``base`` in a message by paths relative to it.

    For errors shown to users (an API answer, a study's error in the web UI): they see
    ``dicom/1.2/3.dcm: ...``, not where the data dir lives on the server.

    Example:
        >>> scrub_paths("/srv/rl/dicom/1.2/3.dcm: truncated", "/srv/rl")
        'dicom/1.2/3.dcm: truncated'
    """
    out = text
    for form in {str(Path(base)), str(Path(base).resolve())}:
        if form and form != os.sep:
            out = out.replace(form.rstrip(os.sep) + os.sep, "")
    return out


def setup_logging(verbose: int, quiet: bool) -> None:
    """Send radiolens log records to stderr at the level the flags ask for."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose >= 2 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(levelname)s %(name)s: %(message)s" if verbose >= 2 else "%(message)s"))
    install_log_filter(handler)  # one escaped, bounded line per record; no patient names
    root = logging.getLogger("radiolens")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
