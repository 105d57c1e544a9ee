"""Round trips with a real Orthanc (run in the foreground, killed in teardown)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from radiolens.dicomnet import echo, send_files
from radiolens.receiver import DicomReceiver
from radiolens.worklist import get_study, list_instances, open_worklist

from .synthetic import free_port, make_dataset, needs_dcmtk, orthanc_binary, write_dicom

ORTHANC = orthanc_binary()

pytestmark = [
    pytest.mark.pacs,
    needs_dcmtk,
    pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed: apt-get install orthanc"),
]


@dataclass
class OrthancServer:
    http: str
    dicom_port: int
    log: Path

    def call(self, method: str, path: str, body: bytes | dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.http + path, data=data, method=method)
        if isinstance(body, bytes):
            request.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")


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
    assert ORTHANC is not None
    root = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "radiolens-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {"radiolens": [receiver.ae_title, "127.0.0.1", receiver.port]},
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "DicomCheckModalityHost": False,
        "Plugins": [],
        "SaveJobs": False,
        "StableAge": 2,
    }
    (root / "config.json").write_text(json.dumps(config))
    log = root / "orthanc.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(ORTHANC), str(root / "config.json")], stdout=out,
                                stderr=subprocess.STDOUT)
    server = OrthancServer(f"http://127.0.0.1:{http_port}", dicom_port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Orthanc exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                server.call("GET", "/system")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"Orthanc did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


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
