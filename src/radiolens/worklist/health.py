"""Health probes of what the worklist stands on: the database and the data folder's disk.

Each probe returns a short reason (``"database read-only"``, ``"disk full"`` ...) or None;
``/health`` reports them. Probes never wait for another writer: a database that is merely
busy is healthy.

Example:
    >>> storage_faults(Path("data"), engine)  # doctest: +SKIP
    []
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

__all__ = ["MIN_FREE_BYTES", "database_fault", "disk_fault", "storage_faults"]

#: Free space below which the data folder counts as full (a study is a few MB).
MIN_FREE_BYTES = 64 * 1024 * 1024


def disk_fault(folder: Path, min_free_bytes: int = MIN_FREE_BYTES) -> str | None:
    """``"disk full"`` when ``folder``'s file system has less than ``min_free_bytes`` free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "data folder unavailable"
    return "disk full" if free < min_free_bytes else None


def _sqlite_write_probe(raw: Any) -> str | None:
    """Try a no-op write and roll it back (100 ms patience) on a raw SQLite connection."""
    import sqlite3

    busy = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute("PRAGMA busy_timeout=100")
    try:
        raw.execute("BEGIN IMMEDIATE")
        try:  # a write that changes nothing; refused on a read-only file or connection
            raw.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
        finally:
            with contextlib.suppress(sqlite3.OperationalError):
                raw.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        message = str(exc).lower()
        if "readonly" in message or "read-only" in message:
            return "database read-only"
        if "locked" in message or "busy" in message:
            return None  # another process writes: that is health
        return "database unavailable"
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(busy)}")
    return None


def database_fault(engine: Engine) -> str | None:
    """``"database read-only"`` or ``"database unavailable"``, or None when writable."""
    try:
        with engine.connect() as conn:
            if engine.dialect.name != "sqlite":
                conn.execute(text("SELECT 1"))
                read_only = conn.execute(text("SHOW transaction_read_only")).scalar()
                return "database read-only" if read_only == "on" else None
            raw = conn.connection.dbapi_connection
            fault = _sqlite_write_probe(raw)
        if fault is not None:
            engine.dispose()  # so that the next use opens fresh connections
        return fault
    except Exception:
        engine.dispose()
        return "database unavailable"


def storage_faults(data_dir: Path, engine: Engine) -> list[str]:
    """Every storage fault now: the data folder's disk, then the database."""
    return [r for r in (disk_fault(data_dir), database_fault(engine)) if r is not None]
