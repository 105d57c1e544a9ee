"""Schema version 4: a scored study keeps its lung check (``image_check``, ``lungs``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from radiolens.worklist import (
    SCHEMA_VERSION,
    claim_job,
    complete_job,
    create_or_migrate,
    get_study,
    make_engine,
    mark_needs_check,
)

from .conftest import add_instance

LUNGS = {"model": "builtin:lungs", "sop_instance_uid": "1.2.3.1",
         "quality": {"ok": False, "reasons": ["one lung only"], "lung_fraction": 0.12},
         "heat_in_lungs": {"Pneumonia": 0.31},
         "attention_warning": "AI attention outside the lungs: check (Pneumonia 31 %)"}


def test_a_version_3_database_gains_the_lung_columns(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "v3.db")
    create_or_migrate(engine)
    with engine.begin() as conn:  # make it look like a version-3 database
        conn.execute(text("ALTER TABLE studies DROP COLUMN image_check"))
        conn.execute(text("ALTER TABLE studies DROP COLUMN lungs"))
        conn.execute(text("UPDATE meta SET value='3' WHERE key='schema_version'"))
    engine.dispose()
    assert create_or_migrate(engine) == SCHEMA_VERSION
    assert create_or_migrate(engine) == SCHEMA_VERSION  # idempotent
    add_instance(engine, "1", "1")
    study = get_study(engine, "1.2.1")
    assert study is not None and study.image_check is None and study.lungs is None


def test_the_lung_check_is_stored_replaced_and_cleared(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    job = claim_job(engine, "w1")
    assert job is not None
    complete_job(engine, job.id, "w1", model="m", findings={"Pneumonia": 0.9}, priority=60,
                 flags=["Pneumonia"], image_check="one lung only", lungs=LUNGS)
    study = get_study(engine, "1.2.1")
    assert study is not None and study.status == "scored"
    assert study.image_check == "one lung only" and study.lungs == LUNGS

    add_instance(engine, "1", "2")  # a new image: scored again, now plausible
    job = claim_job(engine, "w1")
    assert job is not None
    complete_job(engine, job.id, "w1", model="m", findings={"Pneumonia": 0.9}, priority=60,
                 flags=["Pneumonia"], lungs={**LUNGS, "quality": {"ok": True, "reasons": []}})
    study = get_study(engine, "1.2.1")
    assert study is not None and study.image_check is None
    assert study.lungs is not None and study.lungs["quality"]["ok"] is True

    add_instance(engine, "1", "3")  # an image the input gate refuses: nothing is scored
    job = claim_job(engine, "w1")
    assert job is not None
    mark_needs_check(engine, job.id, "w1", "not a chest radiograph")
    study = get_study(engine, "1.2.1")
    assert study is not None and study.lungs is None and study.image_check is None
