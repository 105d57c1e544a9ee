"""The triage API over a worklist filled through the repository functions."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from io import BytesIO

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

from radiolens import DISCLAIMER
from radiolens.errors import ConfigError, InstanceRefused
from radiolens.receiver import STATUS_CANNOT_UNDERSTAND, ingest_dataset
from radiolens.serve import create_app
from radiolens.worklist import (
    get_study,
    list_reviews,
    mark_delivery,
    queue_delivery,
    set_priority,
)

from .conftest import TOKEN, World, encode, grey_dataset, png_bytes


def test_health_needs_no_token(world: World) -> None:
    with TestClient(create_app(world.data_dir, world.engine, TOKEN)) as anonymous:
        r = anonymous.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["disclaimer"] == DISCLAIMER
    assert "counts" not in body and "reasons" not in body  # only up / degraded without login
    with TestClient(create_app(world.data_dir, world.engine, TOKEN),
                    headers={"Authorization": f"Bearer {TOKEN}"}) as admin:
        body = admin.get("/health").json()
    assert body["counts"]["scored"] == 2
    assert body["counts"]["queued"] == 1


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + TOKEN, TOKEN, "Bearer "])
def test_api_refuses_missing_or_wrong_token(world: World, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    with TestClient(create_app(world.data_dir, world.engine, TOKEN)) as anonymous:
        for path in ("/api/studies", f"/api/studies/{world.uids['urgent']}/draft",
                     "/api/deliveries"):
            r = anonymous.get(path, headers=headers)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "token" in r.json()["detail"] or "signed in" in r.json()["detail"]
        r = anonymous.post("/api/upload", headers=headers,
                           files={"files": ("a.png", png_bytes(), "image/png")})
        assert r.status_code == 401


def test_empty_token_is_a_config_error(world: World) -> None:
    with pytest.raises(ConfigError):
        create_app(world.data_dir, world.engine, "  ")


def test_worklist_is_sorted_by_priority(client: TestClient, world: World) -> None:
    studies = client.get("/api/studies").json()
    assert [s["study_instance_uid"] for s in studies] == [
        world.uids["urgent"], world.uids["routine"], world.uids["waiting"]]
    urgent = studies[0]
    assert urgent["priority"] == 90
    assert urgent["priority_set_by"] == "model"
    assert urgent["flags"] == ["Pneumothorax"]
    assert urgent["findings"]["Pneumothorax"] == pytest.approx(0.93)
    assert urgent["patient_id"] == "P-URGENT"
    assert urgent["model_name"] == "test-model"
    assert urgent["scored_at"].endswith("Z") or "+00:00" in urgent["scored_at"]
    assert urgent["links"]["draft"] == f"/api/studies/{world.uids['urgent']}/draft"
    waiting = studies[2]
    assert waiting["status"] == "queued"
    assert waiting["links"]["draft"] is None

    queued = client.get("/api/studies", params={"status": "queued"}).json()
    assert [s["study_instance_uid"] for s in queued] == [world.uids["waiting"]]
    assert len(client.get("/api/studies", params={"limit": 1, "offset": 1}).json()) == 1
    assert client.get("/api/studies", params={"status": "bogus"}).status_code == 400
    assert client.get("/api/studies", params={"limit": 0}).status_code == 422


def test_study_detail(client: TestClient, world: World) -> None:
    uid = world.uids["urgent"]
    delivery = queue_delivery(world.engine, uid, "dicom-sr", "PACS@10.0.0.5:104",
                              payload_path=f"results/{uid}/sr.dcm")
    for _ in range(5):
        mark_delivery(world.engine, delivery.id, ok=False, error="association rejected")
    body = client.get(f"/api/studies/{uid}").json()
    assert body["study_instance_uid"] == uid
    assert body["outputs_pending"] == []
    assert len(body["instances"]) == 1
    assert body["instances"][0]["sop_instance_uid"] == world.sources["urgent"].SOPInstanceUID
    assert len(body["results"]) == 1
    assert set(body["results"][0]["heatmaps"]) == {"Pneumothorax", "Effusion", "Pneumonia"}
    assert body["reviews"] == []
    [d] = body["deliveries"]
    assert (d["status"], d["attempts"], d["last_error"]) == ("failed", 5, "association rejected")

    failed = client.get("/api/deliveries", params={"status": "failed"}).json()
    assert [x["study_instance_uid"] for x in failed] == [uid]
    assert client.get("/api/deliveries", params={"status": "sent"}).json() == []
    assert client.get("/api/deliveries", params={"status": "nope"}).status_code == 400


def test_outputs_still_being_built_are_listed(client: TestClient, world: World) -> None:
    from sqlalchemy.orm import Session

    from radiolens.worklist import Study, complete_outputs

    uid = world.uids["urgent"]
    with Session(world.engine) as session, session.begin():
        study = session.query(Study).filter_by(study_instance_uid=uid).one()
        study.outputs_pending = ["sr", "hl7"]
    row = next(r for r in client.get("/api/studies").json() if r["study_instance_uid"] == uid)
    assert row["outputs_pending"] == ["sr", "hl7"]
    complete_outputs(world.engine, uid, errors={})
    assert client.get(f"/api/studies/{uid}").json()["outputs_pending"] == []


def test_outputs_and_content_types(client: TestClient, world: World) -> None:
    uid = world.uids["urgent"]
    draft = client.get(f"/api/studies/{uid}/draft")
    assert draft.status_code == 200
    body = draft.json()
    assert body["status"] == "preliminary"
    assert body["disclaimer"] == DISCLAIMER
    assert "pneumothorax" in body["text"].lower()

    fhir = client.get(f"/api/studies/{uid}/fhir")
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    assert fhir.json()["resourceType"] == "Bundle"

    sr = client.get(f"/api/studies/{uid}/sr")
    assert sr.headers["content-type"] == "application/dicom"
    assert sr.headers["content-disposition"].startswith("attachment")
    assert pydicom.dcmread(BytesIO(sr.content)).Modality == "SR"

    heatmap = client.get(f"/api/studies/{uid}/heatmap.png")
    assert heatmap.headers["content-type"] == "image/png"
    expected = (world.data_dir / f"results/{uid}/heatmap_pneumothorax.png").read_bytes()
    assert heatmap.content == expected  # the flagged finding by default
    other = client.get(f"/api/studies/{uid}/heatmap.png", params={"finding": "Effusion"})
    assert other.content == (world.data_dir / f"results/{uid}/heatmap_effusion.png").read_bytes()
    # the routine study flags nothing: its first heatmap is the default
    routine = client.get(f"/api/studies/{world.uids['routine']}/heatmap.png")
    assert routine.status_code == 200


def test_not_found(client: TestClient, world: World) -> None:
    for path in ("/api/studies/1.2.3.4", "/api/studies/1.2.3.4/draft",
                 "/api/studies/1.2.3.4/sr", "/api/studies/1.2.3.4/heatmap.png"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "GET /api/studies" in r.json()["detail"]
    waiting = world.uids["waiting"]
    for what in ("draft", "fhir", "sr", "heatmap.png"):
        r = client.get(f"/api/studies/{waiting}/{what}")
        assert r.status_code == 404
        assert "not scored yet" in r.json()["detail"]
    r = client.get(f"/api/studies/{world.uids['urgent']}/heatmap.png",
                   params={"finding": "Cardiomegaly"})
    assert r.status_code == 404
    assert "Pneumothorax" in r.json()["detail"]  # lists what is available


def test_path_traversal_is_refused(client: TestClient, world: World) -> None:
    secret = world.data_dir.parent / "secret.txt"
    secret.write_text("do not serve")
    uid = world.add_study("evil", "P-EVIL", 9)
    set_priority(world.engine, uid, 50, by="model")  # claimed before the waiting study
    world.score("evil", {"Pneumothorax": 0.9, "Effusion": 0.1, "Pneumonia": 0.1}, 50,
                files=False, heatmap_paths={"Pneumothorax": "../secret.txt",
                                            "Effusion": str(secret)},
                sr_path="results/../../secret.txt")
    for path, params in ((f"/api/studies/{uid}/heatmap.png", {}),
                         (f"/api/studies/{uid}/heatmap.png", {"finding": "Effusion"}),
                         (f"/api/studies/{uid}/sr", {})):
        r = client.get(path, params=params)
        assert r.status_code == 404
        assert "outside the data directory" in r.json()["detail"]
        assert b"do not serve" not in r.content
    for path in ("/api/studies/..%2F..%2Fsecret.txt/fhir", "/api/studies/../../secret.txt",
                 f"/api/studies/{uid}/heatmap.png?finding=..%2F..%2Fsecret.txt"):
        r = client.get(path)
        assert r.status_code in (404, 405), path
        assert b"do not serve" not in r.content


def test_person_priority_is_not_lowered_by_a_later_result(
    client: TestClient, world: World
) -> None:
    uid = world.uids["routine"]
    r = client.post(f"/api/studies/{uid}/priority", json={"priority": 80})
    assert r.status_code == 200
    assert (r.json()["priority"], r.json()["priority_set_by"]) == (80, "person")
    assert [s["study_instance_uid"] for s in client.get("/api/studies").json()][:2] == [
        world.uids["urgent"], uid]
    # a new image re-queues the study; the model scores it low again
    ingest_dataset(world.data_dir, world.engine, grey_dataset("P-ROUTINE", 11, uid))
    world.score("routine", {"Pneumothorax": 0.1, "Effusion": 0.1, "Pneumonia": 0.1}, 5)
    study = client.get(f"/api/studies/{uid}").json()
    assert (study["priority"], study["priority_set_by"]) == (80, "person")
    assert len(study["results"]) == 2
    assert study["reviews"][0]["action"] == "reprioritise"
    bad = client.post(f"/api/studies/{uid}/priority", json={"priority": 101})
    assert bad.status_code == 422
    missing = client.post("/api/studies/9.9/priority", json={"priority": 1})
    assert missing.status_code == 404


def _read(client: TestClient, uid: str) -> dict:
    """The latest result of a study and a call for each of its findings."""
    result = client.get(f"/api/studies/{uid}").json()["results"][0]
    calls = {k: ("present" if k in result["flags"] else "absent") for k in result["findings"]}
    return {"result_id": result["id"], "calls": calls, "text": "Small right pneumothorax."}


def test_signed_read_is_structured_final_and_audited(client: TestClient, world: World) -> None:
    uid = world.uids["urgent"]
    body = _read(client, uid)
    r = client.post(f"/api/studies/{uid}/review", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["action"], out["version"], out["reviewer"]) == ("sign", 1, "admin")
    assert out["warnings"] == []
    study = client.get(f"/api/studies/{uid}").json()
    assert study["status"] == "reviewed" and study["reviewed_by"] == "admin"
    unread = [s["study_instance_uid"] for s in client.get("/api/studies?view=unread").json()]
    assert uid not in unread
    draft = client.get(f"/api/studies/{uid}/draft").json()
    assert (draft["final"], draft["status"], draft["text"]) == (
        True, "final", "Small right pneumothorax.")
    sr = pydicom.dcmread(BytesIO(client.get(f"/api/studies/{uid}/sr").content))
    assert (sr.VerificationFlag, sr.CompletionFlag, sr.PreliminaryFlag) == (
        "VERIFIED", "COMPLETE", "FINAL")
    assert sr.VerifyingObserverSequence[0].VerifyingObserverName.family_name == "admin"
    fhir = client.get(f"/api/studies/{uid}/fhir").json()
    report = fhir["entry"][0]["resource"]
    assert report["status"] == "final" and report["performer"][0]["display"] == "admin"
    # signing again is refused; amending makes version 2 and keeps version 1
    again = client.post(f"/api/studies/{uid}/review", json=body)
    assert again.status_code == 409 and "amend" in again.json()["detail"]
    amended = client.post(f"/api/studies/{uid}/review",
                          json={**body, "text": "No pneumothorax.", "amend": True})
    assert amended.status_code == 200 and amended.json()["version"] == 2
    versions = [(x.action, x.version, x.text) for x in list_reviews(world.engine, uid)]
    assert versions == [("sign", 1, "Small right pneumothorax."),
                        ("amend", 2, "No pneumothorax.")]
    assert client.get(f"/api/studies/{uid}/fhir").json()["entry"][0]["resource"][
        "status"] == "amended"
    sr2 = pydicom.dcmread(BytesIO(client.get(f"/api/studies/{uid}/sr").content))
    assert sr2.PredecessorDocumentsSequence[0].StudyInstanceUID == uid


def test_a_stale_or_incomplete_read_is_refused(client: TestClient, world: World) -> None:
    uid = world.uids["routine"]
    body = _read(client, uid)
    missing = dict(body, calls=dict(list(body["calls"].items())[:1]))
    r = client.post(f"/api/studies/{uid}/review", json=missing)
    assert r.status_code == 422 and "missing" in r.json()["detail"]
    bad = dict(body, calls={k: "maybe" for k in body["calls"]})
    assert client.post(f"/api/studies/{uid}/review", json=bad).status_code == 422
    # a new image re-scores the study: a read of the older result is stale
    ingest_dataset(world.data_dir, world.engine, grey_dataset("P-ROUTINE", 12, uid))
    world.score("routine", {"Pneumothorax": 0.1, "Effusion": 0.1, "Pneumonia": 0.1}, 5)
    stale = client.post(f"/api/studies/{uid}/review", json=body)
    assert stale.status_code == 409 and "scored again" in stale.json()["detail"]
    unscored = client.post(f"/api/studies/{world.uids['waiting']}/review", json=body)
    assert unscored.status_code == 409
    legacy = client.post(f"/api/studies/{uid}/review",
                         json={"action": "accept", "reviewer": "anyone"})
    assert legacy.status_code == 422  # the reviewer is the signed-in user, never typed


def _upload(client: TestClient, *files: tuple[str, bytes], **form: str) -> tuple[int, list]:
    r = client.post("/api/upload", files=[("files", f) for f in files], data=form)
    return r.status_code, r.json()["files"] if r.status_code in (200, 422) else r.json()


def test_upload_dicom_png_duplicate(client: TestClient, world: World) -> None:
    ds = grey_dataset("P-UPLOAD", 21)
    dicom = encode(ds)
    status, [item] = _upload(client, ("cxr.dcm", dicom))
    assert status == 200
    assert item == {"filename": "cxr.dcm", "status": "stored",
                    "study_instance_uid": ds.StudyInstanceUID, "error": None}
    stored = world.data_dir / "dicom" / ds.StudyInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    assert stored.read_bytes() == dicom
    status, [again] = _upload(client, ("cxr-again.dcm", dicom))
    assert (status, again["status"]) == (200, "duplicate")

    status, [png] = _upload(client, ("chest.png", png_bytes(5)), patient_id="P-PNG",
                            patient_name="Doe^Jane")
    assert (status, png["status"]) == (200, "stored")
    study = get_study(world.engine, png["study_instance_uid"])
    assert study is not None and study.status == "queued"
    assert study.patient is not None and study.patient.patient_id == "P-PNG"
    listed = {s["study_instance_uid"]: s for s in client.get("/api/studies").json()}
    assert listed[png["study_instance_uid"]]["status"] == "queued"
    detail = client.get(f"/api/studies/{png['study_instance_uid']}").json()
    assert detail["instances"][0]["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.7"
    # the same picture again is a duplicate; an anonymous one gets ANON-<hash>
    assert _upload(client, ("chest.png", png_bytes(5)), patient_id="P-PNG")[1][0][
        "status"] == "duplicate"
    _, [anon] = _upload(client, ("other.jpg", png_bytes(6)))
    anon_study = get_study(world.engine, anon["study_instance_uid"])
    assert anon_study is not None and anon_study.patient is not None
    assert anon_study.patient.patient_id.startswith("ANON-")


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")
def test_upload_refuses_garbage_and_colour(client: TestClient, world: World) -> None:
    garbage = [("junk.dcm", b"\x08\x00" + bytes(range(256)) * 4), ("empty.png", b""),
               ("text.txt", b"hello"), ("fake.png", b"\x89PNG\r\n\x1a\n" + b"0" * 50),
               ("preamble.dcm", b"\0" * 128 + b"DICM" + b"\xff" * 40)]
    status, items = _upload(client, *garbage)
    assert status == 422
    assert [i["status"] for i in items] == ["refused"] * len(garbage)
    assert all(i["error"] for i in items)
    assert "/tmp" not in items[3]["error"]

    colour = grey_dataset("P-COLOUR", 31)
    colour.SamplesPerPixel = 3
    colour.PhotometricInterpretation = "RGB"
    colour.PlanarConfiguration = 0
    colour.PixelData = np.zeros((32, 32, 3), np.uint8).tobytes()
    status, [item] = _upload(client, ("colour.dcm", encode(colour)))
    assert status == 422
    assert "not greyscale" in item["error"]
    with pytest.raises(InstanceRefused) as info:
        ingest_dataset(world.data_dir, world.engine, colour)
    assert info.value.status == STATUS_CANNOT_UNDERSTAND

    # one good file among bad ones: 200; the service still answers
    status, items = _upload(client, ("junk.bin", b"xx"), ("ok.png", png_bytes(7)))
    assert status == 200
    assert [i["status"] for i in items] == ["refused", "stored"]
    assert client.get("/health").status_code == 200
    assert not list(world.data_dir.glob("dicom/*/.*.partial"))


def test_upload_size_cap(world: World) -> None:
    app = create_app(world.data_dir, world.engine, TOKEN, max_upload_bytes=1000)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as small:
        r = small.post("/api/upload", files={"files": ("big.png", b"\0" * 5000, "image/png")})
        assert r.status_code == 413
        r = small.post("/api/upload", files={"files": ("ok.png", png_bytes(size=8))})
        assert r.status_code == 200


def test_chunked_upload_is_capped_while_streaming(world: World) -> None:
    # no Content-Length: the cap must be enforced as the bytes arrive, not after spooling.
    # httpx's ASGI transport hands the app the body chunk by chunk, as a server would
    # (Starlette's TestClient reads a generator body whole first).
    import asyncio

    import httpx

    app = create_app(world.data_dir, world.engine, TOKEN, max_upload_bytes=1000,
                     max_upload_files=1)
    chunk, total = 64 * 1024, 64  # 4 MiB offered; the cap is 1 MiB + 1000 bytes
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield (b"--XyZ\r\nContent-Disposition: form-data; name=\"files\"; "
               b"filename=\"big.dcm\"\r\nContent-Type: application/dicom\r\n\r\n")
        for _ in range(total):
            sent += 1
            yield b"\0" * chunk

    headers = {"Authorization": f"Bearer {TOKEN}",
               "Content-Type": "multipart/form-data; boundary=XyZ"}

    async def run() -> list[tuple[int, str, int]]:
        nonlocal sent
        out = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.post("/api/upload", content=body(), headers=headers)
            assert "content-length" not in r.request.headers
            out.append((r.status_code, r.text, sent))
            sent = 0  # without the token: 401 before any byte is read
            r = await client.post("/api/upload", content=body(),
                                  headers={"Content-Type": headers["Content-Type"]})
            out.append((r.status_code, r.text, sent))
        return out

    (status, text, read), (no_token, _, read_no_token) = asyncio.run(run())
    assert status == 413 and "upload too large" in text
    assert read < total // 2, f"{read} of {total} chunks read before the 413"
    assert (no_token, read_no_token) == (401, 0)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as small:
        # a declared Content-Length over the cap is still refused up front
        r = small.post("/api/upload", content=b"\0" * (2 * 1024 * 1024),
                       headers={"Content-Type": headers["Content-Type"]})
        assert r.status_code == 413
        r = small.post("/api/upload", files={"files": ("ok.png", png_bytes(size=8))})
        assert r.status_code == 200
    assert not list(world.data_dir.glob("dicom/*/.*.partial"))


def test_upload_over_the_pixel_cap_is_refused_before_decoding(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    def no_decoding(*_: object, **__: object) -> None:
        raise AssertionError("the upload was decoded")

    png = png_bytes(size=64)
    app = create_app(world.data_dir, world.engine, TOKEN, max_image_pixels=63 * 64)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as capped:
        monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
        status, [item] = _upload(capped, ("Doe_Jane_chest.png", png), patient_name="Doe^Jane")
        assert status == 422
        assert item["error"] == ("PNG: image 64x64 (0.0 MP) exceeds the 0.0 MP limit; a chest "
                                 "radiograph is at most about 4300x4300: is this the right "
                                 "file?")
        monkeypatch.undo()
        big = grey_dataset("P-BIG", 41)
        big.Rows = big.Columns = 13000  # declared only: refused from the header
        status, [item] = _upload(capped, ("big.dcm", encode(big)))
        assert status == 422 and "13000x13000 (169.0 MP) exceeds" in item["error"]


def test_refused_uploads_log_no_file_name_or_patient_name(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="radiolens")
    _upload(client, ("Doe_Jane_2024.png", b"\x89PNG\r\n\x1a\n" + b"0" * 50),
            ("Roe_Richard.png", png_bytes(3)), patient_name="Doe^Jane")
    text = caplog.text
    assert "upload refused" in text and "upload stored" in text
    for secret in ("Doe", "Jane", "Roe_Richard"):
        assert secret not in text


def test_empty_dicom_pixel_data_upload_gets_a_reason(client: TestClient) -> None:
    ds = grey_dataset("P-EMPTY", 51)
    ds.PixelData = b""
    status, [item] = _upload(client, ("empty.dcm", encode(ds)))
    assert status == 422 and item["error"] == "pixel data is empty"


def test_docs_and_ui(client: TestClient, world: World) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "radiolens triage API"
    assert DISCLAIMER in spec["info"]["description"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    with TestClient(create_app(world.data_dir, world.engine, TOKEN)) as anonymous:
        for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui.css"):
            assert anonymous.get(path).status_code == 401, path
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "AI draft — for radiologist review; not a diagnosis" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/api/studies").headers["cache-control"] == "no-store"


def test_serve_imports_no_torch() -> None:
    code = ("import sys, radiolens.serve; "
            "bad = [m for m in ('torch', 'radiolens.train') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
