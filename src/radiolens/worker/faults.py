"""Telling resource faults from study faults, and backing off while they last.

A full disk or a read-only / unreachable database is not the study's fault: the worker
must not spend the study's attempts on it, only wait (exponentially, capped) and retry.

Example:
    >>> resource_fault(OSError(28, "No space left on device"))
    'disk full'
    >>> Backoff(base=1, cap=8).next_delay(), Backoff(base=1, cap=8).next_delay()
    (1.0, 1.0)
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from radiolens.errors import ImageReadError, RadiolensError

__all__ = ["Backoff", "ResourceFault", "resource_fault"]

_DISK_ERRNOS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "file system read-only", errno.EIO: "disk I/O error"}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


class ResourceFault(RadiolensError):
    """A resource fault still going on (``reason``: "disk full", "database read-only")."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: free disk space or make the database writable; the "
                         "work resumes by itself")


def resource_fault(exc: BaseException) -> str | None:
    """A short reason when ``exc`` (or its cause) is a resource fault, else None.

    Resource faults: ``OSError`` with ENOSPC / EDQUOT / EROFS / EIO (an unreadable image,
    :class:`~radiolens.errors.ImageReadError`, is the study's fault, not one), and
    SQLAlchemy ``OperationalError`` (database locked, read-only, full or unreachable).
    """
    from sqlalchemy.exc import OperationalError

    for link in _chain(exc):
        if isinstance(link, ResourceFault):
            return link.reason
        if isinstance(link, OperationalError):
            text = str(link.orig if link.orig is not None else link).lower()
            if "readonly" in text or "read-only" in text or "read only" in text:
                return "database read-only"
            if "full" in text:
                return "database disk full"
            return "database unavailable"
        if isinstance(link, OSError) and not isinstance(link, ImageReadError):
            reason = _DISK_ERRNOS.get(link.errno or 0)
            if reason is not None:
                return reason
    return None


@dataclass
class Backoff:
    """Exponential delays ``base, 2*base, 4*base ...`` capped at ``cap`` seconds."""

    base: float = 1.0
    cap: float = 60.0
    failures: int = field(default=0, init=False)

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next try."""
        delay = min(self.cap, self.base * 2 ** self.failures)
        self.failures += 1
        return float(delay)

    def reset(self) -> None:
        """Forget the failures (after a success)."""
        self.failures = 0
