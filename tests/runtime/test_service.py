"""The whole service with real peers: Orthanc as the PACS, dcmtk's storescu as a sender.

Orthanc sends a study to radiolens; the worker (a separate process) scores it; radiolens
sends the SR back; the test finds the SR in Orthanc through its REST API, and the study in
radiolens' API with the bearer token.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from radiolens.runtime import TriageService, load_settings

from ..dicomnet.synthetic import (
    STORESCU,
    OrthancServer,
    free_port,
    make_dataset,
    needs_dcmtk,
    orthanc_binary,
    run_orthanc,
    write_dicom,
)

pytestmark = [pytest.mark.pacs, needs_dcmtk,
              pytest.mark.skipif(orthanc_binary() is None,
                                 reason="Orthanc is not installed: apt-get install orthanc")]


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"dicom": free_port(), "http": free_port()}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory,
            ports: dict[str, int]) -> Iterator[OrthancServer]:
    modalities = {"radiolens": ["RADIOLENS", "127.0.0.1", ports["dicom"]]}
    with run_orthanc(tmp_path_factory.mktemp("orthanc"), modalities) as server:
        yield server


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int],
            orthanc: OrthancServer, tiny_model: Path) -> Iterator[TriageService]:
    settings = load_settings({
        "data_dir": tmp_path_factory.mktemp("service"), "dicom_port": ports["dicom"],
        "http_port": ports["http"], "model": str(tiny_model), "api_token": "test-token",
        "forward_to": f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"})
    svc = TriageService(settings)
    svc.start()
    yield svc
    svc.stop()


def _wait(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_orthanc_to_radiolens_and_sr_back(tmp_path: Path, orthanc: OrthancServer,
                                          service: TriageService) -> None:
    path = write_dicom(tmp_path, "e2e-orthanc")
    uid = str(make_dataset(seed="e2e-orthanc").StudyInstanceUID)
    uploaded = orthanc.call("POST", "/instances", path.read_bytes())
    job = orthanc.call("POST", "/modalities/radiolens/store",
                       {"Resources": [uploaded["ID"]], "Synchronous": True})
    assert job["FailedInstancesCount"] == 0
    assert service.wait_until_scored([uid], timeout=120) == {uid: "scored"}

    def sr_in_orthanc() -> list[str]:
        found: list[str] = orthanc.call("POST", "/tools/find", {
            "Level": "Instance", "Query": {"StudyInstanceUID": uid, "Modality": "SR"}})
        return found

    [sr_id] = _wait(sr_in_orthanc)
    tags = orthanc.call("GET", f"/instances/{sr_id}/simplified-tags")
    assert tags["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.88.33"

    headers = {"Authorization": "Bearer test-token"}
    studies = httpx.get(f"{service.url}/api/studies", headers=headers).json()
    [study] = [s for s in studies if s["study_instance_uid"] == uid]
    assert study["status"] == "scored" and "pneumonia" in study["findings"]
    assert httpx.get(f"{service.url}/api/studies").status_code == 401
    draft = httpx.get(f"{service.url}/api/studies/{uid}/draft", headers=headers).json()
    assert "radiologist" in draft["text"].lower()


def _storescu(port: int, *files: Path) -> subprocess.CompletedProcess[str]:
    """dcmtk's storescu, verbose: it then prints each C-STORE response status."""
    return subprocess.run([str(STORESCU), "-v", "-aec", "RADIOLENS", "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, timeout=60)


def test_storescu_and_bad_input_keep_service_up(tmp_path: Path,
                                                service: TriageService) -> None:
    good = [write_dicom(tmp_path, f"storescu-{i}") for i in range(3)]
    # junk that dcmtk does send: a DX image whose pixel data is cut short
    junk = write_dicom(tmp_path, "junk", truncate=True)
    colour = write_dicom(tmp_path, "colour", colour=True)
    port = service.receiver.port
    run = _storescu(port, junk)
    assert "Received Store Response (Error: DataSetDoesNotMatchSOPClass)" in run.stderr + \
        run.stdout, run.stderr  # 0xA900 from us, not a refusal by storescu itself
    assert run.returncode != 0
    run = _storescu(port, colour)
    assert "Received Store Response (Error: CannotUnderstand)" in run.stderr + run.stdout, \
        run.stderr  # 0xC001: a valid image radiolens cannot score
    assert run.returncode != 0
    run = _storescu(port, *good)
    assert run.returncode == 0, run.stderr
    uids = [str(make_dataset(seed=f"storescu-{i}").StudyInstanceUID) for i in range(3)]
    status = service.wait_until_scored(uids, timeout=120)
    assert set(status.values()) == {"scored"}
    assert httpx.get(f"{service.url}/health").json()["status"] == "ok"


# The worker-restart test needs no PACS: see test_supervisor.test_worker_killed_is_restarted.
