"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) against a real uvicorn, with ``dicomweb-client``."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom
import pytest
import requests

from .conftest import TOKEN, World, encode, grey_dataset

dicomweb_client = pytest.importorskip("dicomweb_client", reason="pip install dicomweb-client")


@pytest.fixture
def dw(base_url: str) -> dicomweb_client.DICOMwebClient:
    return dicomweb_client.DICOMwebClient(f"{base_url}/dicomweb",
                                          headers={"Authorization": f"Bearer {TOKEN}"})


def _uid(item: dict, tag: str) -> str:
    return str(item[tag]["Value"][0])


def test_qido_finds_studies_series_instances_and_results(dw, world: World) -> None:
    studies = dw.search_for_studies()
    uids = {_uid(s, "0020000D") for s in studies}
    assert set(world.uids.values()) <= uids
    urgent = world.uids["urgent"]
    only = dw.search_for_studies(search_filters={"PatientID": "P-URGENT"})
    assert [_uid(s, "0020000D") for s in only] == [urgent]
    assert only[0]["00100020"]["Value"] == ["P-URGENT"]
    # the image and the worker's SR are both in the study
    series = dw.search_for_series(urgent)
    modalities = {s["00080060"]["Value"][0] for s in series}
    assert "SR" in modalities and len(series) == 2
    assert int(only[0]["00201208"]["Value"][0]) == 2  # NumberOfStudyRelatedInstances
    image_series = _uid(next(s for s in series if s["00080060"]["Value"][0] != "SR"),
                        "0020000E")
    instances = dw.search_for_instances(urgent, image_series)
    assert [_uid(i, "00080018") for i in instances] == [str(world.sources["urgent"].SOPInstanceUID)]


def test_wado_returns_the_stored_instance_frames_and_metadata(dw, world: World) -> None:
    src = world.sources["urgent"]
    study, series, sop = (str(src.StudyInstanceUID), str(src.SeriesInstanceUID),
                          str(src.SOPInstanceUID))
    got = dw.retrieve_instance(study, series, sop)
    assert np.array_equal(got.pixel_array, src.pixel_array)
    frames = dw.retrieve_instance_frames(study, series, sop, frame_numbers=[1],
                                         media_types=("application/octet-stream",))
    assert frames[0] == bytes(src.PixelData)
    meta = dw.retrieve_instance_metadata(study, series, sop)
    assert meta["00080018"]["Value"] == [sop]
    assert "BulkDataURI" in meta["7FE00010"]  # pixel data by reference, not inline
    whole = dw.retrieve_study(study)
    assert {str(d.Modality) for d in whole} >= {"SR"} and len(whole) == 2


def test_wado_single_part_and_unknown_instance(base_url: str, world: World) -> None:
    src = world.sources["routine"]
    url = (f"{base_url}/dicomweb/studies/{src.StudyInstanceUID}/series/"
           f"{src.SeriesInstanceUID}/instances/{src.SOPInstanceUID}")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.get(url, headers={**auth, "Accept": "application/dicom"}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
    assert pydicom.dcmread(BytesIO(r.content)).SOPInstanceUID == src.SOPInstanceUID
    r = requests.get(url.rsplit("/", 1)[0] + "/1.2.3.4", headers=auth, timeout=30)
    assert r.status_code == 404
    r = requests.get(url + "/frames/2", headers=auth, timeout=30)
    assert r.status_code == 404


def test_dicomweb_needs_the_token(base_url: str) -> None:
    for path in ("/dicomweb/studies", "/dicomweb/studies/1.2.3/series"):
        assert requests.get(base_url + path, timeout=30).status_code == 401
    r = requests.post(base_url + "/dicomweb/studies", data=b"x", timeout=30,
                      headers={"Content-Type": 'multipart/related; type="application/dicom"; '
                                               "boundary=b"})
    assert r.status_code == 401


def test_stow_round_trip_uses_the_ingest_path(dw, world: World) -> None:
    ds = grey_dataset("P-STOW", seed=40)
    answer = dw.store_instances([ds])
    assert answer.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    found = dw.search_for_studies(search_filters={"PatientID": "P-STOW"})
    assert [_uid(s, "0020000D") for s in found] == [str(ds.StudyInstanceUID)]
    back = dw.retrieve_instance(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                                str(ds.SOPInstanceUID))
    assert np.array_equal(back.pixel_array, ds.pixel_array)
    # stored like a C-STORE: the file under dicom/<study>/ and a job queued
    assert (world.data_dir / "dicom" / str(ds.StudyInstanceUID)
            / f"{ds.SOPInstanceUID}.dcm").is_file()
    again = dw.store_instances([ds])  # a duplicate is not an error
    assert again.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID


def test_stow_refuses_what_the_receiver_refuses(base_url: str) -> None:
    colour = grey_dataset("P-BAD", seed=41)
    colour.PhotometricInterpretation = "RGB"
    colour.SamplesPerPixel = 3
    boundary = "radiolens-test"
    body = b""
    for data in (encode(colour), b"not dicom at all"):
        body += (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                 + data + b"\r\n")
    body += f"--{boundary}--\r\n".encode()
    r = requests.post(f"{base_url}/dicomweb/studies", data=body, timeout=30, headers={
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
    assert r.status_code == 409
    failed = r.json()["00081198"]["Value"]
    assert len(failed) == 2 and all("00081197" in f for f in failed)  # FailureReason
    r = requests.post(f"{base_url}/dicomweb/studies", data=b"x", timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}",
                               "Content-Type": "application/json"})
    assert r.status_code == 415
