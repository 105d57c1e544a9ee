"""``/health`` says degraded (with reasons only for the token), failed studies are
re-queued by the API and the CLI, and security headers are on every answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from radiolens.cli.main import main
from radiolens.serve import create_app
from radiolens.worklist import (
    claim_job,
    default_db_path,
    fail_job,
    get_study,
    make_engine,
    open_worklist,
    record_instance,
)

TOKEN = {"Authorization": "Bearer t0ken"}


def _failed_study(engine: Engine, n: int = 1) -> str:
    uid = f"1.2.{n}"
    record_instance(engine, meta={"sop_instance_uid": f"1.2.3.{n}", "study_instance_uid": uid,
                                  "patient_id": f"P{n}"}, path=f"dicom/{n}.dcm", size=1)
    job = claim_job(engine, "w")
    assert job is not None
    fail_job(engine, job.id, "w", "ImageReadError: unreadable", permanent=True)
    return uid


def _client(data_dir: Path, engine: Engine, **kwargs: Any) -> TestClient:
    return TestClient(create_app(data_dir, engine, "t0ken", **kwargs))


def test_health_is_ok_on_a_writable_database(tmp_path: Path) -> None:
    engine = open_worklist(default_db_path(tmp_path))
    client = _client(tmp_path, engine)
    answer = client.get("/health")
    assert answer.json()["status"] == "ok" and "reasons" not in answer.json()
    assert client.get("/health", headers=TOKEN).json()["reasons"] == []
    for key in ("X-Frame-Options", "Referrer-Policy", "X-Content-Type-Options",
                "Content-Security-Policy"):
        assert key in answer.headers
    assert answer.headers["Cache-Control"] == "no-store"


def test_health_on_a_read_only_database_is_degraded(tmp_path: Path) -> None:
    db = default_db_path(tmp_path)
    open_worklist(db).dispose()
    engine = make_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
    client = _client(tmp_path, engine)
    body = client.get("/health").json()
    assert body["status"] == "degraded" and "reasons" not in body  # no token: no reason
    assert client.get("/health", headers=TOKEN).json()["reasons"] == ["database read-only"]


def test_health_reports_a_full_disk_and_the_supervisor(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    engine = open_worklist(default_db_path(tmp_path))
    client = _client(tmp_path, engine, health_reasons=lambda: ["worker restarting"])
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(
        100, 100, 0))
    body = client.get("/health", headers=TOKEN).json()
    assert body["status"] == "degraded"
    assert body["reasons"] == ["disk full", "worker restarting"]


def test_admin_requeue_route(tmp_path: Path) -> None:
    engine = open_worklist(default_db_path(tmp_path))
    first, second = _failed_study(engine, 1), _failed_study(engine, 2)
    client = _client(tmp_path, engine)
    assert client.post("/api/admin/requeue", json={}).status_code == 401
    one = client.post("/api/admin/requeue", json={"study_instance_uid": first}, headers=TOKEN)
    assert one.status_code == 200 and one.json() == {"requeued": [first]}
    assert client.post("/api/admin/requeue", json={"study_instance_uid": "9.9"},
                       headers=TOKEN).status_code == 404
    assert client.post("/api/admin/requeue", json={}, headers=TOKEN).json() == {
        "requeued": [second]}
    study = get_study(engine, second)
    assert study is not None and study.status == "queued"


def test_requeue_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = open_worklist(default_db_path(tmp_path))
    uid = _failed_study(engine)
    assert main(["requeue", "--failed", "--data-dir", str(tmp_path)]) == 0
    assert uid in capsys.readouterr().out
    study = get_study(engine, uid)
    assert study is not None and study.status == "queued"
    assert main(["requeue", "--failed", "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "no worklist" in err and len(err.strip().splitlines()) == 1
