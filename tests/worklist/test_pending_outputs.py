"""Schema version 5: outputs still to build after scoring (``outputs_pending``), and no
JSON 'null' standing in for "none" (it made cleared output errors look unfinished)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from radiolens.worklist import (
    SCHEMA_VERSION,
    claim_job,
    complete_job,
    complete_outputs,
    create_or_migrate,
    get_study,
    make_engine,
    record_output_errors,
    studies_missing_outputs,
)

from .conftest import add_instance, both_backends


def _scored(engine: Engine, study: str = "1", pending: tuple[str, ...] = ()) -> str:
    add_instance(engine, study, "1")
    job = claim_job(engine, "w1")
    assert job is not None
    complete_job(engine, job.id, "w1", model="m", findings={"pneumonia": 0.9}, priority=60,
                 flags=["pneumonia"], outputs_pending=pending)
    return f"1.2.{study}"


def _missing(engine: Engine, skip: tuple[str, ...] = ()) -> list[str]:
    return [s.study_instance_uid for s in studies_missing_outputs(engine, skip=skip)]


@both_backends
def test_pending_outputs_are_found_until_built(engine: Engine) -> None:
    uid = _scored(engine, pending=("sr", "fhir", "hl7"))
    study = get_study(engine, uid)
    assert study is not None and study.status == "scored"
    assert study.outputs_pending == ["sr", "fhir", "hl7"] and study.error is None
    assert _missing(engine) == [uid]  # a worker that stopped here builds them on restart
    assert _missing(engine, skip=(uid,)) == []  # the worker building them leaves them out
    complete_outputs(engine, uid, errors={}, sr_path=f"results/{uid}/sr.dcm")
    study = get_study(engine, uid)
    assert study is not None and study.outputs_pending is None and study.error is None
    assert _missing(engine) == []


@both_backends
def test_a_failed_output_is_retried_and_a_cleared_one_is_not(engine: Engine) -> None:
    uid = _scored(engine, pending=("sr",))
    complete_outputs(engine, uid, errors={"sr": "DraftError: bad date"})
    study = get_study(engine, uid)
    assert study is not None and study.outputs_pending is None
    assert study.output_attempts == 1 and "sr: DraftError" in (study.error or "")
    assert _missing(engine) == [uid]
    record_output_errors(engine, uid, {})  # the retry built it
    assert _missing(engine) == []  # before version 5 it stayed "missing" for ever
    study = get_study(engine, uid)
    assert study is not None and study.output_errors is None and study.error is None


def test_a_version_4_database_gains_the_column_and_loses_json_nulls(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "v4.db")
    create_or_migrate(engine)
    uid = _scored(engine)
    with engine.begin() as conn:  # a version-4 database, with a cleared error as 'null'
        conn.execute(text("ALTER TABLE studies DROP COLUMN outputs_pending"))
        conn.execute(text("UPDATE studies SET output_errors = 'null', lungs = 'null'"))
        conn.execute(text("UPDATE meta SET value='4' WHERE key='schema_version'"))
    assert _raw(engine, "output_errors") == "null"
    engine.dispose()
    assert create_or_migrate(engine) == SCHEMA_VERSION
    assert create_or_migrate(engine) == SCHEMA_VERSION  # idempotent
    assert _raw(engine, "output_errors") is None and _raw(engine, "lungs") is None
    assert _missing(engine) == []
    study = get_study(engine, uid)
    assert study is not None and study.outputs_pending is None


def _raw(engine: Engine, column: str) -> object:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT {column} FROM studies")).scalar_one()
