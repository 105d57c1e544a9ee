"""Engines and schema versioning."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
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

from .conftest import add_instance


def test_sqlite_engine_uses_wal_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/sub/w.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_default_db_path(tmp_path: Path) -> None:
    assert default_db_path(tmp_path) == tmp_path / "worklist.db"


def test_schema_version_recorded_and_checked(tmp_path: Path) -> None:
    engine = open_worklist(tmp_path / "w.db")
    assert create_or_migrate(engine) == SCHEMA_VERSION  # idempotent
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
    if importlib.util.find_spec("psycopg2") is None:
        with pytest.raises(WorklistError, match="pip install"):
            make_engine("postgresql://u@localhost/db")


def test_timestamps_are_aware_utc(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    study = get_study(engine, "1.2.1")
    assert study is not None
    assert study.received_at.tzinfo is dt.UTC
    assert study.study_date == dt.date(2024, 1, 2)
    assert study.patient is not None and study.patient.patient_id == "P1"


def test_broken_database_raises_worklist_error(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE jobs"))
    with pytest.raises(WorklistError, match="worklist database error"):
        claim_job(engine, "w")


@pytest.mark.skipif(
    not os.environ.get("RADIOLENS_TEST_PG_URL"),
    reason="set RADIOLENS_TEST_PG_URL=postgresql+psycopg://... to test PostgreSQL",
)
def test_postgresql_round_trip() -> None:
    engine = open_worklist(os.environ["RADIOLENS_TEST_PG_URL"])
    uid = f"1.2.999.{os.getpid()}"
    try:
        meta = {"sop_instance_uid": uid + ".1", "study_instance_uid": uid}
        _, created = record_instance(engine, meta=meta, path="x.dcm", size=1)
        assert created
        assert any(s.study_instance_uid == uid for s in list_studies(engine, limit=1000))
        assert claim_job(engine, "pg-worker") is not None
    finally:
        engine.dispose()
