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


def test_storescu_and_bad_input_keep_service_up(tmp_path: Path,
                                                service: TriageService) -> None:
    good = [write_dicom(tmp_path, f"storescu-{i}") for i in range(3)]
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"this is not DICOM")
    colour = write_dicom(tmp_path, "colour", colour=True)
    port = str(service.receiver.port)
    # dcmtk refuses to send the junk file itself; the colour image is refused by us.
    run = subprocess.run([str(STORESCU), "-aec", "RADIOLENS", "127.0.0.1", port,
                          str(colour)], capture_output=True, text=True, timeout=60)
    assert "0xc001" in (run.stdout + run.stderr).lower() or run.returncode != 0
    run = subprocess.run([str(STORESCU), "-aec", "RADIOLENS", "127.0.0.1", port,
                          *map(str, good)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    uids = [str(make_dataset(seed=f"storescu-{i}").StudyInstanceUID) for i in range(3)]
    status = service.wait_until_scored(uids, timeout=120)
    assert set(status.values()) == {"scored"}
    assert httpx.get(f"{service.url}/health").json()["status"] == "ok"


def test_worker_killed_is_restarted(service: TriageService, tmp_path: Path) -> None:
    proc = service._worker_proc
    assert proc is not None
    proc.kill()
    proc.join(timeout=10)
    path = write_dicom(tmp_path, "after-kill")
    uid = str(make_dataset(seed="after-kill").StudyInstanceUID)
    from radiolens.dicomnet import send_files

    assert send_files([path], f"RADIOLENS@127.0.0.1:{service.receiver.port}").ok
    assert service.wait_until_scored([uid], timeout=120) == {uid: "scored"}
    assert service.restarts >= 1
