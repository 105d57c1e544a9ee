"""Engines for the worklist database: SQLite (WAL, several processes) or PostgreSQL.

SQLite follows the recipe that keeps job claims atomic across processes: pysqlite's
implicit transactions are switched off and every transaction starts with
``BEGIN IMMEDIATE``, so a read-then-write claim holds the write lock from its start and
``busy_timeout`` makes the others wait instead of failing.

Engines never log bound parameters (``hide_parameters=True``: they hold patient names and
ids), test pooled connections before use (``pool_pre_ping``), and are disposed by the
repository after an ``OperationalError`` so that a database that was read-only or gone
is used again without a restart.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from radiolens.errors import WorklistError
from radiolens.worklist.models import create_or_migrate

__all__ = ["BUSY_TIMEOUT_S", "DB_FILENAME", "default_db_path", "make_engine", "open_worklist"]

logger = logging.getLogger(__name__)

#: How long a SQLite connection waits for another process's write lock.
BUSY_TIMEOUT_S = 30.0
#: File name of the SQLite worklist inside the data directory.
DB_FILENAME = "worklist.db"


def default_db_path(data_dir: str | Path) -> Path:
    """Return where the SQLite worklist lives inside a data directory."""
    return Path(data_dir) / DB_FILENAME


def _to_url(url_or_path: str | Path) -> URL:
    if isinstance(url_or_path, Path) or "://" not in url_or_path:
        path = Path(url_or_path).expanduser().resolve()
        return URL.create("sqlite", database=str(path))
    try:
        return make_url(url_or_path)
    except ArgumentError as exc:
        raise WorklistError(f"cannot parse the database URL {url_or_path!r}: {exc}") from exc


def _sqlite_engine(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory and url.database is not None:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "connect_args": {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        "hide_parameters": True,
        "pool_pre_ping": True,
    }
    if memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, or every one is empty
    engine = create_engine(url, **kwargs)
    busy_ms = int(BUSY_TIMEOUT_S * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # no implicit BEGIN from pysqlite
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            f"PRAGMA busy_timeout={busy_ms}",
            "PRAGMA foreign_keys=ON",
        ):
            dbapi_conn.execute(pragma)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")  # a WAL reader: waits for no writer
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock at BEGIN

    return engine


#: Execution option of an engine whose transactions only read (see :func:`reading`).
READ_ONLY_OPTION = "radiolens_read_only"


def reading(engine: Engine) -> Engine:
    """``engine`` for transactions that only read: on SQLite they begin without taking
    the write lock, so a worklist page never waits behind the receiver's fsynced commits
    (WAL readers see the last commit). Writing through it is a mistake; on PostgreSQL it
    changes nothing."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def make_engine(url_or_path: str | Path) -> Engine:
    """Create an engine for the worklist database.

    Args:
        url_or_path: a file path or ``sqlite:///...`` URL (SQLite in WAL mode, safe for
            several processes), or a ``postgresql://`` / ``postgresql+psycopg://`` URL.

    Returns:
        A SQLAlchemy engine; call :func:`create_or_migrate` (or use
        :func:`open_worklist`) before the first use of a new database.

    Raises:
        WorklistError: the URL is unsupported or its database driver is not installed.

    Example:
        >>> engine = make_engine("/tmp/radiolens/worklist.db")  # doctest: +SKIP
    """
    url = _to_url(url_or_path)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        try:
            return create_engine(url, pool_pre_ping=True, hide_parameters=True)
        except ModuleNotFoundError as exc:
            driver = url.get_driver_name()
            hint = (
                "pip install 'psycopg[binary]'"
                if driver == "psycopg"
                else "pip install psycopg2-binary (or use a postgresql+psycopg:// URL "
                "with pip install 'psycopg[binary]')"
            )
            raise WorklistError(
                f"the PostgreSQL driver {driver!r} is not installed ({exc.name}); {hint}"
            ) from exc
    raise WorklistError(
        f"unsupported worklist database {backend!r}: use a file path, sqlite:///PATH "
        "or postgresql://USER@HOST/DB"
    )


def open_worklist(url_or_path: str | Path) -> Engine:
    """Create an engine with :func:`make_engine` and create or check the schema."""
    engine = make_engine(url_or_path)
    create_or_migrate(engine)
    return engine
