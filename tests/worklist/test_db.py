"""Engines and schema versioning."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist import (
    SCHEMA_VERSION,
    Meta,
    claim_job,
    create_or_migrate,
    default_db_path,
    get_study,
    list_studies,
    make_engine,
    open_worklist,
    record_instance,
)

from .conftest import add_instance, both_backends


def test_sqlite_engine_uses_wal_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/sub/w.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_default_db_path(tmp_path: Path) -> None:
    assert default_db_path(tmp_path) == tmp_path / "worklist.db"


@both_backends
def test_schema_version_recorded_and_checked(db_url: str) -> None:
    engine = open_worklist(db_url)  # creates the tables in an empty database
    assert create_or_migrate(engine) == SCHEMA_VERSION  # idempotent
    engine.dispose()
    engine = open_worklist(db_url)  # and opens an existing one
    with Session(engine) as session, session.begin():
        row = session.get(Meta, "schema_version")
        assert row is not None and row.value == str(SCHEMA_VERSION)
        row.value = str(SCHEMA_VERSION + 1)
    with pytest.raises(WorklistError, match="newer"):
        create_or_migrate(engine)
    engine.dispose()


def test_unsupported_url_and_missing_driver() -> None:
    with pytest.raises(WorklistError, match="unsupported"):
        make_engine("mysql://u@localhost/db")
    # a bare postgresql:// means psycopg2 before SQLAlchemy 2.1 and psycopg (3) from 2.1 on
    default = make_url("postgresql://").get_dialect().driver
    for driver in (default, "psycopg2", "psycopg"):
        url = f"postgresql+{driver}://u@localhost/db"
        if importlib.util.find_spec(driver) is None:
            with pytest.raises(WorklistError, match="pip install"):
                make_engine(url)
        else:
            make_engine(url).dispose()  # no connection is made yet


@both_backends
def test_timestamps_are_aware_utc(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    study = get_study(engine, "1.2.1")
    assert study is not None
    assert study.received_at.tzinfo is dt.UTC
    assert study.study_date == dt.date(2024, 1, 2)
    assert study.patient is not None and study.patient.patient_id == "P1"


@both_backends
def test_broken_database_raises_worklist_error(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE jobs"))
    with pytest.raises(WorklistError, match="worklist database error"):
        claim_job(engine, "w")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_round_trip(db_url: str) -> None:
    engine = open_worklist(db_url)
    assert engine.dialect.name == "postgresql"
    uid = "1.2.999"
    try:
        meta = {"sop_instance_uid": uid + ".1", "study_instance_uid": uid}
        _, created = record_instance(engine, meta=meta, path="x.dcm", size=1)
        assert created
        assert any(s.study_instance_uid == uid for s in list_studies(engine, limit=1000))
        assert claim_job(engine, "pg-worker") is not None
        with engine.connect() as conn:  # aware timestamps are stored with their zone
            kind = conn.exec_driver_sql(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'studies' AND column_name = 'received_at'"
            ).scalar()
        assert kind == "timestamp with time zone"
    finally:
        engine.dispose()


def test_reads_do_not_take_the_write_lock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A worklist page must not wait behind the receiver's fsynced commits."""
    import sqlite3

    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from radiolens.worklist import open_worklist
    from radiolens.worklist.db import reading

    engine = open_worklist(tmp_path / "wl.db")
    writer = sqlite3.connect(tmp_path / "wl.db", timeout=0.1, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with Session(reading(engine)) as session:  # still reads the last commit
            assert session.execute(text("select count(*) from studies")).scalar() == 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        engine.dispose()
