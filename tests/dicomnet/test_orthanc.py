"""Round trips with a real Orthanc (run in the foreground, killed in teardown)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from radiolens.dicomnet import echo, send_files
from radiolens.receiver import DicomReceiver
from radiolens.worklist import get_study, list_instances, open_worklist

from .synthetic import (
    OrthancServer,
    free_port,
    make_dataset,
    needs_dcmtk,
    orthanc_binary,
    run_orthanc,
    write_dicom,
)

ORTHANC = orthanc_binary()

pytestmark = [
    pytest.mark.pacs,
    needs_dcmtk,
    pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed: apt-get install orthanc"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = open_worklist(tmp_path_factory.mktemp("wl") / "worklist.db")
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[DicomReceiver]:
    scp = DicomReceiver(tmp_path_factory.mktemp("data"), engine, host="127.0.0.1",
                        port=free_port())
    with scp:
        yield scp


@pytest.fixture(scope="module")
def orthanc(
    tmp_path_factory: pytest.TempPathFactory, receiver: DicomReceiver
) -> Iterator[OrthancServer]:
    modalities = {"radiolens": [receiver.ae_title, "127.0.0.1", receiver.port]}
    with run_orthanc(tmp_path_factory.mktemp("orthanc"), modalities) as server:
        yield server


def test_orthanc_sends_to_radiolens(
    tmp_path: Path, orthanc: OrthancServer, receiver: DicomReceiver, engine: Engine
) -> None:
    assert orthanc.call("POST", "/modalities/radiolens/echo", {}) == {}
    path = write_dicom(tmp_path, "from-orthanc")
    uploaded = orthanc.call("POST", "/instances", path.read_bytes())
    assert uploaded["Status"] == "Success"
    job = orthanc.call("POST", "/modalities/radiolens/store",
                       {"Resources": [uploaded["ID"]], "Synchronous": True})
    assert job["InstancesCount"] == 1 and job["FailedInstancesCount"] == 0
    ds = make_dataset(seed="from-orthanc")
    study = get_study(engine, str(ds.StudyInstanceUID))
    assert study is not None and study.status == "queued"
    [instance] = list_instances(engine, str(ds.StudyInstanceUID))
    assert (receiver.data_dir / instance.path).is_file()


def test_radiolens_sends_to_orthanc(tmp_path: Path, orthanc: OrthancServer) -> None:
    to = f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    assert echo(to)
    path = write_dicom(tmp_path, "to-orthanc", patient_id="P-ORTHANC")
    report = send_files([path], to)
    assert report.ok, report.failed
    uid = str(make_dataset(seed="to-orthanc").SOPInstanceUID)
    [found] = orthanc.call("POST", "/tools/find",
                           {"Level": "Instance", "Query": {"SOPInstanceUID": uid}})
    tags = orthanc.call("GET", f"/instances/{found}/simplified-tags")
    assert tags["PatientID"] == "P-ORTHANC"
