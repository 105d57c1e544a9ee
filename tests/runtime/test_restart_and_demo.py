"""Restarting the service loses nothing; the demo (the main job) runs end to end."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from radiolens.cli.main import main
from radiolens.runtime import TriageService, load_settings
from radiolens.worklist import default_db_path, get_study, open_worklist

from ..dicomnet.synthetic import free_port


def test_studies_queued_while_down_are_scored_after_restart(
        tiny_model: Path, tmp_path: Path) -> None:
    from radiolens.imaging import to_secondary_capture
    from radiolens.receiver import ingest_dataset

    data_dir = tmp_path / "data"
    engine = open_worklist(default_db_path(data_dir))
    import numpy as np

    ds = to_secondary_capture(np.eye(64, dtype=np.uint8) * 200, patient_id="RESTART1")
    uid, created = ingest_dataset(data_dir, engine, ds)
    assert created and get_study(engine, uid).status == "queued"  # type: ignore[union-attr]
    settings = load_settings({"data_dir": data_dir, "dicom_port": free_port(),
                              "http_port": free_port(), "model": str(tiny_model),
                              "api_token": "t"})
    service = TriageService(settings, worker_in_process=False)
    service.start()
    try:
        assert service.wait_until_scored([uid], timeout=60) == {uid: "scored"}
    finally:
        service.stop()
    again = TriageService(settings, worker_in_process=False)
    again.start()  # the same data folder: the study and its result are still there
    try:
        study = get_study(again.engine, uid)
        assert study is not None and study.status == "scored" and study.findings
    finally:
        again.stop()


def test_demo_runs_and_prints_the_worklist(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--exit-when-done", "--data-dir", str(tmp_path / "demo"),
                 "--dicom-port", str(free_port()), "--http-port", str(free_port())])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "priority" in out and "DEMO-001" in out
    assert out.count("scored") == 8
    assert "never replaces" in out
    assert "curl" not in out and "http://" not in out  # the service has stopped
    assert "the service has stopped" in out


def test_demo_removes_its_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = main(["demo", "--exit-when-done", "--dicom-port", str(free_port()),
                 "--http-port", str(free_port())])
    assert code == 0, capsys.readouterr().out
    assert list(tmp_path.glob("radiolens-demo-*")) == []


def test_demo_says_when_it_moves_to_another_port(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from radiolens.cli.demo_triage import _free_port

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        busy = sock.getsockname()[1]
        chosen = _free_port(busy, "DICOM")
    assert chosen != busy
    assert f"port {busy} is in use; using port {chosen} for DICOM" in capsys.readouterr().out
