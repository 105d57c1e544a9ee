"""The worker scores queued studies, writes every output, retries and gives up cleanly."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pydicom
import pytest

from radiolens.errors import ConfigError
from radiolens.worker import Worker, load_policy, parse_host_port
from radiolens.worklist import (
    default_db_path,
    due_deliveries,
    get_study,
    list_results,
    open_worklist,
)

from .conftest import StoreStudy


def test_scores_a_study_and_writes_outputs(tiny_model: Path, store_study: StoreStudy,
                                           tmp_path: Path) -> None:
    uid = store_study()
    data_dir = tmp_path / "data"
    worker = Worker(data_dir, model=str(tiny_model)).load()
    assert worker.run_once() is True
    assert worker.run_once() is False  # queue empty
    engine = open_worklist(default_db_path(data_dir))
    study = get_study(engine, uid)
    assert study is not None and study.status == "scored"
    assert study.flags == ["pneumonia"] and 0 <= study.findings["pneumonia"] <= 1
    assert study.priority >= 50  # flagged studies rank above every unflagged one
    [result] = list_results(engine, uid)
    assert result.draft_text and "PRELIMINARY AI DRAFT" in result.draft_text
    out = data_dir / "results" / uid
    sr = pydicom.dcmread(out / "sr.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    assert sr.StudyInstanceUID == uid
    bundle = json.loads((out / "fhir.json").read_text())
    assert bundle["resourceType"] == "Bundle"
    assert (out / "oru.hl7").read_text().startswith("MSH|")
    assert (data_dir / result.heatmap_paths["pneumonia"]).is_file()


def test_a_study_is_on_the_worklist_before_its_outputs(tiny_model: Path,
                                                       store_study: StoreStudy,
                                                       tmp_path: Path) -> None:
    uid = store_study()
    data_dir = tmp_path / "data"
    worker = Worker(data_dir, model=str(tiny_model), hl7_to="127.0.0.1:9",
                    output_lag_s=3600).load()
    assert worker.run_batch(defer_outputs=True) == 1
    engine = open_worklist(default_db_path(data_dir))
    study = get_study(engine, uid)
    out = data_dir / "results" / uid
    # scored, prioritised, with its heatmap and draft: what the radiologist sees first
    assert study is not None and study.status == "scored" and study.flags == ["pneumonia"]
    assert set(study.outputs_pending or []) == {"lungs", "sr", "fhir", "hl7", "heatmap_sc",
                                                 "lung_seg"}
    # this classifier needs no lung mask: the lungs are segmented after triage, too
    assert study.lungs is None and not (out / "lung_mask.png").exists()
    [result] = list_results(engine, uid)
    assert result.draft_text and result.sr_path is None
    assert (data_dir / result.heatmap_paths["pneumonia"]).is_file()
    assert not (out / "sr.dcm").exists() and due_deliveries(engine) == []
    # not overdue yet while more studies are queued; built once the lag has passed
    assert worker.build_pending_outputs(overdue_only=True) == 0
    worker.output_lag_s = 0.0
    assert worker.build_pending_outputs(overdue_only=True) == 1
    study = get_study(engine, uid)
    assert study is not None and study.outputs_pending is None and study.error is None
    [result] = list_results(engine, uid)
    assert result.sr_path == f"results/{uid}/sr.dcm" and (out / "sr.dcm").is_file()
    assert (out / "oru.hl7").is_file() and (out / "heatmap_pneumonia_sc.dcm").is_file()
    assert (out / "lung_seg.dcm").is_file() and (out / "lung_mask.png").is_file()
    assert study.lungs is not None and "pneumonia" in study.lungs["heat_in_lungs"]
    heat = json.loads((out / "heatmaps.json").read_text())["pneumonia"]["heat_in_lungs"]
    assert heat == study.lungs["heat_in_lungs"]["pneumonia"]
    assert result.draft_text == (out / "draft.txt").read_text()
    assert [d.kind for d in due_deliveries(engine)] == ["hl7"]
    assert worker.build_pending_outputs() == 0  # nothing left


def test_outputs_a_stopped_worker_left_are_built_by_the_next(tiny_model: Path,
                                                            store_study: StoreStudy,
                                                            tmp_path: Path) -> None:
    uid = store_study()
    data_dir = tmp_path / "data"
    first = Worker(data_dir, model=str(tiny_model)).load()
    assert first.run_batch(defer_outputs=True) == 1
    # the first worker stops here (killed): its in-memory list of outputs is gone
    del first
    out = data_dir / "results" / uid
    assert not (out / "sr.dcm").exists()
    second = Worker(data_dir, model=str(tiny_model)).load()
    assert second.retry_outputs() >= 3
    study = get_study(second.engine_, uid)
    assert study is not None and study.outputs_pending is None and study.error is None
    assert (out / "sr.dcm").is_file() and (out / "fhir.json").is_file()
    assert second.retry_outputs() == 0  # and it stays built


def test_unreadable_study_fails_at_once_with_a_relative_path(tiny_model: Path,
                                                             store_study: StoreStudy,
                                                             tmp_path: Path) -> None:
    uid = store_study(corrupt=True)
    data_dir = tmp_path / "data"
    worker = Worker(data_dir, model=str(tiny_model)).load()
    assert worker.run_once() is True
    assert worker.run_once() is False  # not retried: retrying cannot make it readable
    study = get_study(open_worklist(default_db_path(data_dir)), uid)
    assert study is not None and study.status == "failed"
    assert study.error and "no readable image" in study.error
    assert "after" not in study.error  # failed at once, not "after 3 attempts"
    assert str(tmp_path) not in study.error and f"dicom/{uid}/" in study.error


def _ack_listener() -> tuple[int, list[bytes], threading.Thread]:
    received: list[bytes] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            data = b""
            while not data.endswith(b"\x1c\r"):
                data += conn.recv(65536)
            received.append(data)
            msg = data.strip(b"\x0b\x1c\r").decode()
            control = msg.split("\r")[0].split("|")[9]
            ack = (f"MSH|^~\\&|RIS||RADIOLENS||20260101000000||ACK^R01|X1|P|2.5\r"
                   f"MSA|AA|{control}\r")
            conn.sendall(b"\x0b" + ack.encode() + b"\x1c\r")
        srv.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, received, thread


def test_hl7_result_is_delivered(tiny_model: Path, store_study: StoreStudy,
                                 tmp_path: Path) -> None:
    port, received, thread = _ack_listener()
    uid = store_study()
    data_dir = tmp_path / "data"
    worker = Worker(data_dir, model=str(tiny_model), hl7_to=f"127.0.0.1:{port}").load()
    assert worker.run_once()
    assert worker.deliver_due() == 1
    thread.join(timeout=10)
    assert received and b"ORU^R01" in received[0] and uid.encode() in received[0]
    assert due_deliveries(worker.engine_) == []


def test_failed_delivery_is_kept_for_retry(tiny_model: Path, store_study: StoreStudy,
                                           tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    store_study()
    worker = Worker(tmp_path / "data", model=str(tiny_model),
                    hl7_to=f"127.0.0.1:{dead_port}").load()
    assert worker.run_once()
    assert worker.deliver_due() == 0
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from radiolens.worklist import Delivery

    with Session(worker.engine_) as session:
        [delivery] = session.scalars(select(Delivery)).all()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_error


def test_policy_override(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("thresholds: {pneumonia: 0.7}\nurgency: {pneumonia: 3}\n")
    policy = load_policy({"pneumonia": 0.3}, {"pneumonia": 1}, policy_file)
    assert not policy.is_flagged("pneumonia", 0.5)
    assert policy.priority({"pneumonia": 0.9}) > policy.priority({"pneumonia": 0.69})
    assert policy.priority({"pneumonia": 0.69}) <= 40
    policy_file.write_text("thresholds: {pneumonai: 0.7}\n")
    with pytest.raises(ConfigError, match="did you mean 'pneumonia'"):
        load_policy({"pneumonia": 0.3}, {}, policy_file)


def test_parse_host_port() -> None:
    assert parse_host_port("ris.example.org:2575") == ("ris.example.org", 2575)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_host_port("ris.example.org")
