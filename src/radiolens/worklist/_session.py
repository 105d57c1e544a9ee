"""Transactions shared by the worklist modules.

Every worklist function takes an :class:`~sqlalchemy.Engine` (it then runs in its own
short transaction, committed before it returns) or a :class:`~sqlalchemy.orm.Session`
(it then joins the caller's transaction and only flushes). Objects come back detached
with their columns loaded (``expire_on_commit=False``), so callers can read them after
the session closed; ``Study.patient`` is loaded with the study.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist.models import (
    Instance,
    Result,
    Review,
    Study,
)

Bind = Engine | Session


@contextmanager
def _transaction(bind: Bind | Connection) -> Iterator[Session]:
    """Yield a session: the caller's (flushed at the end) or a new committed one."""
    try:
        if isinstance(bind, Session):
            yield bind
            bind.flush()
            return
        with Session(bind, expire_on_commit=False) as session, session.begin():
            yield session
    except IntegrityError:
        raise
    except OperationalError as exc:
        engine = bind if isinstance(bind, Engine) else getattr(bind, "engine", None)
        if isinstance(engine, Engine):
            engine.dispose()  # pooled connections may stay read-only or broken: reopen them
        raise WorklistError(f"worklist database error: {exc}") from exc
    except SQLAlchemyError as exc:
        raise WorklistError(f"worklist database error: {exc}") from exc


@contextmanager
def _durable_transaction(bind: Bind) -> Iterator[Session]:
    """Like :func:`_transaction`, but a SQLite commit is fsynced (``synchronous=FULL``).

    For commits something is acknowledged on (a C-STORE): in WAL mode with ``NORMAL`` a
    power cut may lose the last commits, which the sender then believes stored.
    """
    if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
        with _transaction(bind) as session:
            yield session
        return
    try:
        conn = bind.connect()
    except OperationalError as exc:
        bind.dispose()
        raise WorklistError(f"worklist database error: {exc}") from exc
    with conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA synchronous=FULL")  # not allowed inside a transaction
        try:
            with _transaction(conn) as session:
                yield session
        finally:
            try:
                raw.execute("PRAGMA synchronous=NORMAL")
            except Exception:  # still in a failed transaction: drop the connection
                conn.invalidate()


def _check_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 100:
        raise ValueError(f"priority must be an integer from 0 to 100, got {priority!r}")
    return priority


def _study_by_uid(session: Session, uid: str) -> Study:
    study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).first()
    if study is None:
        raise WorklistError(f"no study with Study Instance UID {uid!r} on the worklist")
    return study



_Row = TypeVar("_Row", Instance, Result, Review)


def _study_rows(bind: Bind, uid: str, model: type[_Row], newest_first: bool) -> list[_Row]:
    """The rows of ``model`` that belong to the study ``uid``, by id."""
    with _transaction(bind) as session:
        study = _study_by_uid(session, uid)
        order = model.id.desc() if newest_first else model.id
        return list(session.scalars(select(model).where(model.study_fk == study.id)
                                    .order_by(order)))


def _apply_model_priority(study: Study, priority: int) -> None:
    if study.priority_set_by == "person":
        if priority > study.priority:
            study.priority = priority  # a model may raise a person's priority, never lower it
        return
    study.priority = priority
    study.priority_set_by = "model"
