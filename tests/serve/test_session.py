"""Logins, cookies, CSRF tokens and roles on the HTTP API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from radiolens.serve import create_app
from radiolens.worklist.accounts import add_user, issue_api_token

from .conftest import TOKEN, World

PASSWORD = "correct horse battery"


def _app(world: World) -> TestClient:
    return TestClient(create_app(world.data_dir, world.engine, TOKEN))


def _read_body(c: TestClient, uid: str) -> dict:
    result = c.get(f"/api/studies/{uid}").json()["results"][0]
    return {"result_id": result["id"], "text": "Normal chest.",
            "calls": {k: "absent" for k in result["findings"]}}


def test_login_sets_a_strict_httponly_cookie_and_csrf(world: World) -> None:
    add_user(world.engine, "ada", "reviewer", PASSWORD)
    with _app(world) as c:
        assert c.post("/api/session", json={"name": "ada", "password": "wrong"}
                      ).status_code == 401
        r = c.post("/api/session", json={"name": "ada", "password": PASSWORD})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"]
        assert "radiolens_session=" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
        csrf = r.json()["csrf_token"]
        assert r.json()["name"] == "ada" and csrf
        assert c.get("/api/session").json()["name"] == "ada"
        assert c.get("/api/studies").status_code == 200  # reads need no CSRF token
        uid = world.uids["routine"]
        body = _read_body(c, uid)
        # a state change without, or with a stale, CSRF token is refused
        assert c.post(f"/api/studies/{uid}/review", json=body).status_code == 403
        stale = c.post(f"/api/studies/{uid}/review", json=body,
                       headers={"X-CSRF-Token": "stale-" + csrf})
        assert stale.status_code == 403 and "CSRF" in stale.json()["detail"]
        ok = c.post(f"/api/studies/{uid}/review", json=body, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200 and ok.json()["reviewer"] == "ada"
        # a reviewer is not an administrator
        assert c.post("/api/admin/requeue", json={}, headers={"X-CSRF-Token": csrf}
                      ).status_code == 403
        assert c.delete("/api/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert c.get("/api/studies").status_code == 401


def test_personal_token_signs_as_its_user(world: World) -> None:
    add_user(world.engine, "bob", "admin", PASSWORD)
    token = issue_api_token(world.engine, "bob")
    with TestClient(create_app(world.data_dir, world.engine, TOKEN),
                    headers={"Authorization": f"Bearer {token}"}) as c:
        uid = world.uids["urgent"]
        r = c.post(f"/api/studies/{uid}/review", json=_read_body(c, uid))
        assert r.status_code == 200 and r.json()["reviewer"] == "bob"  # no CSRF for tokens
        assert c.post("/api/admin/requeue", json={}).status_code == 200
    with TestClient(create_app(world.data_dir, world.engine, TOKEN),
                    headers={"Authorization": "Bearer rl_not-a-token"}) as c:
        assert c.get("/api/studies").status_code == 401


def test_worklist_views_search_and_total(world: World) -> None:
    with TestClient(create_app(world.data_dir, world.engine, TOKEN),
                    headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = c.get("/api/studies?view=all&limit=2")
        assert r.headers["x-total-count"] == "3" and len(r.json()) == 2
        found = c.get("/api/studies?q=p-urgent").json()
        assert [s["study_instance_uid"] for s in found] == [world.uids["urgent"]]
        assert c.get("/api/studies?view=flagged").json()[0]["study_instance_uid"] == \
            world.uids["urgent"]
        oldest = c.get("/api/studies?view=unread&order=oldest").json()
        assert oldest[0]["study_instance_uid"] == world.uids["routine"]
        assert c.get("/api/studies?view=nonsense").status_code == 400
        row = c.get("/api/studies").json()[0]
        assert {"patient_age", "patient_sex", "reviewed_by"} <= set(row)


def test_a_check_image_study_can_be_closed_without_an_ai_result(world: World) -> None:
    from radiolens.worklist import claim_job, mark_needs_check

    uid = world.uids["waiting"]
    job = claim_job(world.engine, owner="w")  # the only queued study
    assert job is not None
    mark_needs_check(world.engine, job.id, "w", "image is 1 x 50176 pixels")
    with TestClient(create_app(world.data_dir, world.engine, TOKEN),
                    headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        assert c.get(f"/api/studies/{uid}").json()["status"] == "needs-check"
        bad = c.post(f"/api/studies/{uid}/review",
                     json={"result_id": 1, "calls": {}, "text": "x"})
        assert bad.status_code == 409
        r = c.post(f"/api/studies/{uid}/review", json={
            "result_id": None, "calls": {}, "text": "Image not diagnostic; repeat."})
        assert r.status_code == 200, r.text
        draft = c.get(f"/api/studies/{uid}/draft").json()
        assert draft["final"] and draft["text"] == "Image not diagnostic; repeat."
        assert uid not in [s["study_instance_uid"] for s in
                           c.get("/api/studies?view=unread").json()]


def test_event_stream_resumes_from_the_last_event_id(world: World) -> None:
    import datetime as dt

    from radiolens.serve.routes import worklist as routes

    class _Request:
        def __init__(self, value: str) -> None:
            self.headers = {"last-event-id": value}

    now = dt.datetime.now(dt.UTC)
    ten_ago = (now - dt.timedelta(minutes=10)).isoformat()
    assert abs((routes._resume_from(_Request(ten_ago)) - (now - dt.timedelta(minutes=10))
                ).total_seconds()) < 1
    week_ago = (now - dt.timedelta(days=7)).isoformat()
    assert routes._resume_from(_Request(week_ago)) >= now - dt.timedelta(hours=1, seconds=5)
    assert routes._resume_from(_Request("garbage")) >= now


def test_the_signed_sr_is_queued_for_the_pacs(world: World) -> None:
    from radiolens.worklist import list_deliveries

    app = create_app(world.data_dir, world.engine, TOKEN, forward_to="PACS@127.0.0.1:104")
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        uid = world.uids["urgent"]
        assert c.post(f"/api/studies/{uid}/review", json=_read_body(c, uid)).status_code == 200
    [delivery] = [d for d in list_deliveries(world.engine, uid=uid)
                  if d.payload_path and "signed" in d.payload_path]
    assert (delivery.kind, delivery.destination, delivery.status) == (
        "dicom-sr", "PACS@127.0.0.1:104", "pending")
    assert (world.data_dir / delivery.payload_path).is_file()
