"""DicomReceiver against dcmtk's storescu/echoscu and pynetdicom senders."""

from __future__ import annotations

import errno
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from radiolens import _fs as fs_module
from radiolens.dicomnet import send_dataset, send_files
from radiolens.errors import DicomSendError
from radiolens.receiver import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_MISMATCH,
    STATUS_OUT_OF_RESOURCES,
    DicomReceiver,
)
from radiolens.receiver import ingest as ingest_module
from radiolens.worklist import Instance, Job, get_study, list_instances, list_studies

from ..dicomnet.synthetic import (
    CR,
    ECHOSCU,
    RT_PLAN,
    SC,
    STORESCU,
    free_port,
    make_dataset,
    needs_dcmtk,
    write_dicom,
)

pytestmark = [pytest.mark.pacs, needs_dcmtk]


def _storescu(receiver: DicomReceiver, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STORESCU), "-aet", "STORESCU", "-aec", receiver.ae_title,
         "127.0.0.1", str(receiver.port), *map(str, files)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def _to(receiver: DicomReceiver) -> str:
    return f"{receiver.ae_title}@127.0.0.1:{receiver.port}"


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_echoscu(receiver: DicomReceiver) -> None:
    proc = subprocess.run(
        [str(ECHOSCU), "-aet", "ECHO", "-aec", "RADIOLENS", "127.0.0.1", str(receiver.port)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert receiver.stats["echoes"] == 1


def test_storescu_stores_files_and_queues_one_job_per_study(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine
) -> None:
    study = "1.2.826.0.1.3680043.8.498.1"
    files = [
        write_dicom(tmp_path / "in", "pa", study_uid=study),
        write_dicom(tmp_path / "in", "lat", study_uid=study, sop_class=CR),
        write_dicom(tmp_path / "in", "other", patient_id="P002"),
        write_dicom(tmp_path / "in", "scan", sop_class=SC, patient_id="P003"),
    ]
    proc = _storescu(receiver, *files)
    assert proc.returncode == 0, proc.stderr

    stored = sorted((tmp_path / "data" / "dicom").rglob("*.dcm"))
    assert len(stored) == 4
    assert not list((tmp_path / "data").rglob("*.partial"))
    assert (tmp_path / "data" / "dicom" / study).is_dir()
    assert _count(engine, Instance) == 4
    assert _count(engine, Job) == 3  # one per study
    studies = list_studies(engine)
    assert {s.status for s in studies} == {"queued"}
    instances = list_instances(engine, study)
    assert len(instances) == 2
    for inst in instances:
        assert (tmp_path / "data" / inst.path).stat().st_size == inst.size_bytes
    found = get_study(engine, study)
    assert found is not None and found.patient is not None
    assert found.patient.patient_id == "P001"
    assert receiver.stats["received"] == 4


def test_duplicate_is_stored_once(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine
) -> None:
    path = write_dicom(tmp_path / "in", "dup")
    assert _storescu(receiver, path).returncode == 0
    assert _storescu(receiver, path).returncode == 0
    assert len(list((tmp_path / "data" / "dicom").rglob("*.dcm"))) == 1
    assert _count(engine, Instance) == 1
    assert _count(engine, Job) == 1
    assert receiver.stats["received"] == 1
    assert receiver.stats["duplicates"] == 1


def test_bad_inputs_are_refused_and_the_receiver_keeps_serving(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine
) -> None:
    first = write_dicom(tmp_path / "in", "first")
    assert _storescu(receiver, first).returncode == 0
    [kept] = (tmp_path / "data" / "dicom").rglob("*.dcm")
    kept_digest = _digest(kept)

    # not DICOM at all: storescu refuses it before sending anything
    junk = tmp_path / "in" / "junk.dcm"
    junk.write_bytes(b"this is not a DICOM file" * 10)
    assert _storescu(receiver, junk).returncode != 0

    # an SOP class the receiver does not accept is rejected at negotiation
    rt = write_dicom(tmp_path / "in", "plan", sop_class=RT_PLAN)
    assert _storescu(receiver, rt).returncode != 0
    report = send_files([rt], _to(receiver))
    assert report.failed and "does not accept" in report.failed[0][1]

    # valid DICOM the receiver cannot score: failure statuses from the SCP
    cases = {
        "nopixels": (dict(pixels=False), STATUS_MISMATCH),
        "truncated": (dict(truncate=True), STATUS_MISMATCH),
        "colour": (dict(colour=True, sop_class=SC), STATUS_CANNOT_UNDERSTAND),
        "multiframe": (dict(frames=2), STATUS_CANNOT_UNDERSTAND),
    }
    for seed, (kwargs, status) in cases.items():
        ds = make_dataset(seed=seed, **kwargs)  # type: ignore[arg-type]
        with pytest.raises(DicomSendError, match=f"0x{status:04X}"):
            send_dataset(ds, _to(receiver))
    assert receiver.stats["failed"] == len(cases)

    # still serving: a good file succeeds, the earlier one is intact
    later = write_dicom(tmp_path / "in", "later")
    assert _storescu(receiver, later).returncode == 0
    assert _digest(kept) == kept_digest
    assert len(list((tmp_path / "data" / "dicom").rglob("*.dcm"))) == 2
    assert _count(engine, Instance) == 2


def test_database_failure_returns_failure_and_leaves_no_file(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE instances"))
    ds = make_dataset(seed="dbfail")
    with pytest.raises(DicomSendError, match=f"0x{STATUS_OUT_OF_RESOURCES:04X}"):
        send_dataset(ds, _to(receiver))
    assert not list((tmp_path / "data" / "dicom").rglob("*.dcm"))
    assert receiver.stats["failed"] == 1


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "serial"])
@pytest.mark.parametrize("fails", ["write", "fsync"])
def test_disk_failure_returns_failure_and_the_resend_is_stored(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch, overlap: bool, fails: str
) -> None:
    def full_disk(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if fails == "write":
        monkeypatch.setattr(ingest_module, "write_atomic", full_disk)
        monkeypatch.setattr(ingest_module, "write_new", full_disk)
    else:  # the bytes were written; making them durable fails
        monkeypatch.setattr(fs_module.os, "fsync", full_disk)
    ds = make_dataset(seed="diskfail")
    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port(),
                        overlap_fsync=overlap)
    with scp:
        with pytest.raises(DicomSendError, match=f"0x{STATUS_OUT_OF_RESOURCES:04X}"):
            send_dataset(ds, _to(scp))
        assert not list((tmp_path / "data").rglob("*.dcm"))  # no file that may not last
        assert not list((tmp_path / "data").rglob("*.partial"))
        # overlapped, the row may be committed before the fsync fails; never otherwise
        assert _count(engine, Instance) == (1 if overlap and fails == "fsync" else 0)
        monkeypatch.undo()
        send_dataset(ds, _to(scp))  # the sender's retry
        send_dataset(make_dataset(seed="diskok"), _to(scp))
    assert _count(engine, Instance) == 2
    for inst in list_instances(engine, str(ds.StudyInstanceUID)):
        assert (tmp_path / "data" / inst.path).stat().st_size == inst.size_bytes


def test_receiver_opens_its_own_worklist(tmp_path: Path) -> None:
    from ..dicomnet.synthetic import free_port

    scp = DicomReceiver(tmp_path / "data", host="127.0.0.1", port=free_port())
    assert not (tmp_path / "data").exists()  # the constructor does no I/O
    with scp:
        send_dataset(make_dataset(seed="own"), _to(scp))
        assert scp.engine_ is not None
        assert len(list_studies(scp.engine_)) == 1
    assert (tmp_path / "data" / "worklist.db").exists()
    assert not scp.running


def test_same_instance_under_another_study_is_kept_once(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine
) -> None:
    ds = make_dataset(seed="moved")
    send_dataset(ds, _to(receiver))
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.99"
    send_dataset(ds, _to(receiver))
    assert len(list((tmp_path / "data" / "dicom").rglob("*.dcm"))) == 1
    assert _count(engine, Instance) == 1


def test_start_blocking_until_stop(tmp_path: Path, engine: Engine) -> None:
    import threading
    import time

    from ..dicomnet.synthetic import free_port

    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port())
    thread = threading.Thread(target=scp.start, kwargs={"block": True}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not scp.running and time.monotonic() < deadline:
        time.sleep(0.02)
    send_dataset(make_dataset(seed="blocking"), _to(scp))
    scp.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert scp.stats["received"] == 1


def test_receiver_never_imports_torch() -> None:
    code = "import sys, radiolens.receiver, radiolens.worklist, radiolens.dicomnet; " \
           "sys.exit('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def _storescu_debug(receiver: DicomReceiver, path: Path,
                    called: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STORESCU), "-d", "-aet", "STORESCU", "-aec", called or receiver.ae_title,
         "127.0.0.1", str(receiver.port), str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_image_over_the_pixel_cap_is_refused_with_a900(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine
) -> None:
    # a header declaring 12000 x 12000 (the pixel data need not be there to refuse it)
    ds = make_dataset(seed="huge")
    ds.Rows = ds.Columns = 12000
    path = tmp_path / "huge.dcm"
    ds.save_as(path, enforce_file_format=True)
    proc = _storescu_debug(receiver, path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "0xa900" in out.lower() and "12000x12000 (144.0 MP) exceeds" in out
    with pytest.raises(DicomSendError, match=r"0xA900: image 12000x12000 .*exceeds the 36\.0"):
        send_dataset(ds, _to(receiver))
    assert _count(engine, Instance) == 0
    assert not list((tmp_path / "data").rglob("*.dcm"))


def test_pixel_cap_is_a_receiver_setting(tmp_path: Path, engine: Engine) -> None:
    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port(),
                        max_pixels=63 * 64)
    with scp:
        with pytest.raises(DicomSendError, match=r"0xA900.*64x64.*exceeds"):
            send_dataset(make_dataset(seed="capped", size=64), _to(scp))
        send_dataset(make_dataset(seed="fits", size=63), _to(scp))
    assert _count(engine, Instance) == 1


def test_empty_pixel_data_is_refused_with_a900_and_a_reason(
    receiver: DicomReceiver, engine: Engine
) -> None:
    ds = make_dataset(seed="emptypixels")
    ds.PixelData = b""
    with pytest.raises(DicomSendError, match="0xA900: pixel data is empty") as info:
        send_dataset(ds, _to(receiver))
    assert "NoneType" not in str(info.value)
    assert _count(engine, Instance) == 0


def test_called_ae_title_is_checked_by_default(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine
) -> None:
    path = write_dicom(tmp_path / "in", "called")
    proc = _storescu_debug(receiver, path, called="SOMEONE-ELSE")
    assert proc.returncode != 0 and "Called AE Title Not Recognized" in proc.stderr
    assert _count(engine, Instance) == 0
    relaxed = DicomReceiver(tmp_path / "relaxed", engine, host="127.0.0.1", port=free_port(),
                            require_called_aet=False)
    with relaxed:
        proc = _storescu_debug(relaxed, path, called="SOMEONE-ELSE")
        assert proc.returncode == 0, proc.stderr
    assert _count(engine, Instance) == 1


def test_receiver_logs_are_one_line_each_and_carry_no_patient_identity(
    tmp_path: Path, receiver: DicomReceiver
) -> None:
    import io
    import logging
    import warnings

    from radiolens.logsafe import install_log_filter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    install_log_filter(handler)
    logger = logging.getLogger("radiolens.receiver")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        forged = make_dataset(seed="forged", patient_id="MRN-777")
        forged.PatientName = "Secret^Person"
        forged.PatientBirthDate = "19450203"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pydicom: invalid UI value
            forged.SOPInstanceUID = "1.2.3\nCRITICAL forged line"  # pynetdicom: <= 64
            with pytest.raises(DicomSendError, match="0xA900: invalid SOPInstanceUID"):
                send_dataset(forged, _to(receiver))
        good = make_dataset(seed="logged", patient_id="MRN-777")
        good.PatientName = "Secret^Person"
        send_dataset(good, _to(receiver))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    text = stream.getvalue()
    lines = text.splitlines()
    assert not any(line.startswith("CRITICAL") for line in lines)
    refused = [line for line in lines if line.startswith("refused instance")]
    assert len(refused) == 1 and "\\nCRITICAL forged" in refused[0]
    assert any(line.startswith("stored instance") for line in lines)
    for secret in ("Secret", "Person", "MRN-777", "19450203"):
        assert secret not in text


def test_storage_failure_comment_names_no_server_path(
    tmp_path: Path, receiver: DicomReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(dest: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(dest))

    monkeypatch.setattr(ingest_module, "write_atomic", full_disk)
    monkeypatch.setattr(ingest_module, "write_new", full_disk)
    with pytest.raises(DicomSendError, match="0xA700: storage failed: No space") as info:
        send_dataset(make_dataset(seed="nopath"), _to(receiver))
    assert str(tmp_path) not in str(info.value)


def test_bare_tcp_connections_do_not_lock_the_pacs_out(tmp_path: Path, engine: Engine) -> None:
    """A port scan or a load balancer's TCP check opens connections that never send an
    A-ASSOCIATE-RQ; each holds an association slot until the ACSE timeout. With
    pynetdicom's defaults (10 slots, 30 s) eleven such probes refused every sender
    ("Local Limit Exceeded") for half a minute."""
    import socket
    import time

    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port(),
                        max_associations=4, acse_timeout=1.0)
    scp.start()
    try:
        for _ in range(12):
            socket.create_connection(("127.0.0.1", scp.port), timeout=5).close()
        path = write_dicom(tmp_path, "probe", sop_class=CR)
        deadline = time.monotonic() + 20  # far beyond the 1 s timeout, far below 30 s
        while (proc := _storescu(scp, path)).returncode != 0:
            assert "Local Limit Exceeded" in proc.stdout + proc.stderr, proc.stderr
            assert time.monotonic() < deadline, "the probes still hold every slot"
            time.sleep(0.5)
        assert list_studies(engine)
    finally:
        scp.stop()


def test_associations_get_large_pdus_and_a_short_network_loop(
    tmp_path: Path, engine: Engine
) -> None:
    from pynetdicom import AE, evt

    from radiolens.receiver.scp import DEFAULT_MAX_PDU_SIZE, DUL_POLL_S

    delays: list[float] = []
    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port())
    scp.start()
    try:
        assert scp._server is not None
        scp._server.bind(evt.EVT_ACCEPTED,  # runs after our EVT_CONN_OPEN handler
                         lambda event: delays.append(event.assoc.dul._run_loop_delay))
        ae = AE(ae_title="PDUTEST")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", scp.port, ae_title=scp.ae_title)
        assert assoc.is_established
        assert assoc.acceptor.maximum_length == DEFAULT_MAX_PDU_SIZE  # what we offered
        assoc.release()
    finally:
        scp.stop()
    assert delays == [DUL_POLL_S]


def test_the_network_loop_slows_while_several_associations_are_open(
    tmp_path: Path, engine: Engine
) -> None:
    import time

    from pynetdicom import AE

    from radiolens.receiver.scp import BUSY_DUL_POLL_S, DUL_POLL_S

    def delays(scp: DicomReceiver) -> list[float]:
        assert scp.ae_ is not None
        return sorted(a.dul._run_loop_delay for a in scp.ae_.active_associations)

    def wait_for(scp: DicomReceiver, expected: list[float]) -> None:
        deadline = time.monotonic() + 10
        while delays(scp) != expected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert delays(scp) == expected

    ae = AE(ae_title="LOOPTEST")
    ae.add_requested_context("1.2.840.10008.1.1")
    with DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port()) as scp:
        first = ae.associate("127.0.0.1", scp.port, ae_title=scp.ae_title)
        assert first.is_established
        wait_for(scp, [DUL_POLL_S])  # alone: the short loop, for latency
        second = ae.associate("127.0.0.1", scp.port, ae_title=scp.ae_title)
        assert second.is_established
        wait_for(scp, [BUSY_DUL_POLL_S] * 2)  # together: the longer loop, for CPU
        assert second.send_c_echo().Status == 0x0000
        second.release()
        wait_for(scp, [DUL_POLL_S])  # alone again
        assert scp.loop_delays_.current == DUL_POLL_S
        first.release()


@pytest.mark.parametrize("option", [{"loop_delay_s": 0}, {"max_pdu_size": -1},
                                    {"loop_delay_s": 5}, {"busy_loop_delay_s": 0}])
def test_bad_network_settings_are_refused(tmp_path: Path, option: dict[str, float]) -> None:
    from radiolens.errors import ConfigError

    with pytest.raises(ConfigError, match=r"max_pdu_size at least 0, loop_delay_s and busy"):
        DicomReceiver(tmp_path, **option)  # type: ignore[arg-type]
