"""The worklist recovers from a read-only database, hides bound parameters, fsyncs the
acknowledged commit, re-queues failed studies and counts no attempt for resource faults."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist import (
    SCHEMA_VERSION,
    Job,
    claim_job,
    create_or_migrate,
    fail_job,
    get_study,
    make_engine,
    record_instance,
    release_job,
    requeue_failed,
)

from .conftest import add_instance


def _break_pooled_connection(engine: Engine) -> None:
    """Leave a read-only connection in the pool (as a DB once opened read-only does)."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA query_only=ON")


def _fail_for_good(engine: Engine, study: str) -> None:
    add_instance(engine, study, study)
    job = claim_job(engine, "w1")
    assert job is not None
    fail_job(engine, job.id, "w1", "ImageReadError: unreadable", permanent=True)


def test_recovers_from_a_read_only_database_without_restart(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    add_instance(engine, "1", "1")
    _break_pooled_connection(engine)
    with pytest.raises(WorklistError, match="readonly"):
        record_instance(engine, meta={"sop_instance_uid": "1.2.3.9",
                                      "study_instance_uid": "1.2.9",
                                      "patient_id": "SECRET-ID-4711",
                                      "patient_name": "SECRET^PATIENT"},
                        path="x.dcm", size=1)
    study, created = add_instance(engine, "2", "2")  # the broken connection is gone
    assert created and study.status == "queued"


def test_errors_never_show_bound_parameters(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with engine.begin() as conn:  # any failing INSERT of a patient row will do
        conn.execute(text("CREATE TRIGGER no_patients BEFORE INSERT ON patients "
                          "BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    with pytest.raises(WorklistError) as info:
        record_instance(engine, meta={"sop_instance_uid": "1.2.3.9",
                                      "study_instance_uid": "1.2.9",
                                      "patient_id": "SECRET-ID-4711",
                                      "patient_name": "SECRET^PATIENT"},
                        path="x.dcm", size=1)
    assert "refused" in str(info.value)
    assert "SECRET" not in str(info.value) and "hidden" in str(info.value)


def test_the_acknowledged_commit_is_fsynced(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    levels: list[int] = []

    @event.listens_for(engine, "commit")
    def _on_commit(conn: object) -> None:
        raw = conn.connection.dbapi_connection  # type: ignore[attr-defined]
        levels.append(raw.execute("PRAGMA synchronous").fetchone()[0])

    add_instance(engine, "1", "1")
    claim_job(engine, "w1")
    assert levels == [2, 1]  # FULL for the C-STORE's record, NORMAL for the rest
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # reset in the pool


def test_release_counts_no_attempt(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    for _ in range(5):
        job = claim_job(engine, "w1")
        assert job is not None and job.attempts == 1
        release_job(engine, job.id, "w1", "disk full")
    study = get_study(engine, "1.2.1")
    assert study is not None and study.status == "queued"


def test_a_resend_of_a_failed_study_requeues_it(engine: Engine) -> None:
    _fail_for_good(engine, "1")
    study, created = add_instance(engine, "1", "1")  # the PACS sends the same file again
    assert not created
    assert study.status == "queued" and study.error is None
    job = claim_job(engine, "w1")
    assert job is not None and job.attempts == 1


def test_requeue_failed_studies(engine: Engine) -> None:
    _fail_for_good(engine, "1")
    _fail_for_good(engine, "2")
    add_instance(engine, "3", "3")
    assert requeue_failed(engine, "1.2.1") == ["1.2.1"]
    with pytest.raises(WorklistError, match="not failed"):
        requeue_failed(engine, "1.2.3")
    assert requeue_failed(engine) == ["1.2.2"]
    assert requeue_failed(engine) == []
    with Session(engine) as session:
        pending = session.scalars(select(Job).where(Job.status == "pending")).all()
    assert len(pending) == 3


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "old.db")
    create_or_migrate(engine)
    with engine.begin() as conn:  # make it look like a version-1 database
        conn.execute(text("ALTER TABLE studies DROP COLUMN output_errors"))
        conn.execute(text("ALTER TABLE studies DROP COLUMN output_attempts"))
        conn.execute(text("UPDATE meta SET value='1' WHERE key='schema_version'"))
    engine.dispose()
    assert create_or_migrate(engine) == SCHEMA_VERSION
    add_instance(engine, "1", "1")
    study = get_study(engine, "1.2.1")
    assert study is not None and study.output_attempts == 0


def test_a_version_2_database_gains_the_signed_review_columns(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "v2.db")
    create_or_migrate(engine)
    with engine.begin() as conn:  # make it look like a version-2 database
        for table, column in (("studies", "reviewed_by"), ("studies", "reviewed_at"),
                              ("reviews", "calls"), ("reviews", "boxes"),
                              ("reviews", "version")):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("UPDATE meta SET value='2' WHERE key='schema_version'"))
    engine.dispose()
    assert create_or_migrate(engine) == SCHEMA_VERSION
    add_instance(engine, "1", "1")
    study = get_study(engine, "1.2.1")
    assert study is not None and study.reviewed_by is None
