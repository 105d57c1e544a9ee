"""The reviewer's workspace in headless Chromium (Debian's /usr/bin/chromium): log in,
the prioritised worklist, structured per-finding review and signing, CSRF, masking,
paging, live alerts over server-sent events, annotate mode, agreement, accessibility.

Screenshots are left in $RADIOLENS_SCREENSHOTS (default /tmp/radiolens-screenshots).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from radiolens.worklist import list_reviews

from .conftest import World, poll_page

pytestmark = pytest.mark.browser

#: where the tests leave their screenshots, to look at; the docs' own ones (real
#: radiographs) are made by docs/screenshots/make_screenshots.py
SHOTS = Path(os.environ.get("RADIOLENS_SCREENSHOTS", "/tmp/radiolens-screenshots"))
USER, PASSWORD = "ada", "correct horse battery"


@pytest.fixture
def ada(world: World) -> str:
    from radiolens.worklist.accounts import add_user

    add_user(world.engine, USER, "reviewer", PASSWORD)
    return USER


class UI:
    """A page on the UI that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base_url: str, **context: Any) -> None:
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, **context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def poll(self, expression: str, timeout: float = 20.0) -> Any:
        """Wait until ``expression`` (JS) is truthy (see ``conftest.poll_page``)."""
        return poll_page(self.page, expression, timeout)

    def login(self, name: str = USER, password: str = PASSWORD) -> None:
        self.page.goto(self.base_url + "/")
        self.page.wait_for_selector("#signin:not([hidden])")
        self.page.fill("#login-name", name)
        self.page.fill("#login-password", password)
        self.page.click("#login-form button[type=submit]")
        self.page.wait_for_selector("#whoami:not([hidden])")
        self.poll("document.querySelectorAll('#worklist tbody tr').length > 0")

    def uids(self) -> list[str]:
        return self.page.eval_on_selector_all("#worklist tbody tr",
                                              "rows => rows.map(r => r.dataset.uid)")

    def open(self, uid: str) -> None:
        self.page.click(f"#worklist tbody tr[data-uid='{uid}']")
        self.wait_rendered(uid)

    def wait_rendered(self, uid: str) -> None:
        self.poll(f"document.querySelector('#detail').dataset.uid === '{uid}'"
                  " && document.querySelector('#viewport').dataset.rendered !== undefined"
                  " && !document.querySelector('#viewport').classList.contains('loading')")
        self.page.wait_for_timeout(300)

    def call(self, finding: str, value: str) -> None:
        self.page.check(f"#calls fieldset.call[data-finding='{finding}'] input[value='{value}']")
        # a click on the pre-selected radio confirms it too
        self.page.click(f"#calls fieldset.call[data-finding='{finding}'] input[value='{value}']")

    def fetch(self, path: str, method: str = "GET", headers: dict[str, str] | None = None,
              body: Any = None) -> dict[str, Any]:
        """fetch() in the page (with its cookie); {status, json}."""
        return self.page.evaluate(
            """async ([path, method, headers, body]) => {
                const r = await fetch(path, {method, headers,
                    body: body === null ? undefined : JSON.stringify(body)});
                let json = null;
                try { json = await r.json(); } catch (e) { /* empty */ }
                return {status: r.status, json};
            }""", [path, method, headers or {}, body])

    def csp_errors(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e or "uncaught" in e]



def test_login_worklist_by_priority_sign_amend_and_final_report(
        browser, base_url: str, world: World, ada: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    ui = UI(browser, base_url)
    page = ui.page
    page.goto(base_url + "/")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.is_hidden("#workspace")
    assert page.locator("#reviewer").count() == 0  # no free-text reviewer any more
    # a wrong password is refused and said so
    page.fill("#login-name", ada)
    page.fill("#login-password", "wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#message.error:has-text('Wrong user name or password')")
    ui.login()
    assert "Signed in as ada (reviewer)" in " ".join(page.inner_text("#whoami").split())
    assert page.get_attribute("#views button[data-view='unread']", "aria-pressed") == "true"

    # by priority, with the priority's colour and words
    urgent, routine, waiting = (world.uids[k] for k in ("urgent", "routine", "waiting"))
    assert ui.uids() == [urgent, routine, waiting]
    high = page.locator(f"#worklist tr[data-uid='{urgent}'] .prio")
    low = page.locator(f"#worklist tr[data-uid='{routine}'] .prio")
    assert high.inner_text() == "90 high" and "prio-high" in (high.get_attribute("class") or "")
    assert low.inner_text() == "10 low" and "prio-low" in (low.get_attribute("class") or "")
    colour = "el => getComputedStyle(el).backgroundColor"
    assert high.evaluate(colour) != low.evaluate(colour)
    assert "min" in page.inner_text(f"#worklist tr[data-uid='{urgent}'] .col-waiting")
    assert "100 %" not in page.inner_text("#worklist")
    assert "of 3" in page.inner_text("#page-info")
    page.screenshot(path=str(SHOTS / "worklist.png"))

    # the unflagged study: every AI suggestion is "absent" and must be confirmed
    ui.open(routine)
    page.wait_for_selector("#review-form:not([hidden])")
    assert page.inner_text("#draft-banner").startswith("AI draft")
    assert page.locator("#calls fieldset.call[data-state='ai']").count() == 3
    assert page.is_disabled("#sign")
    for f in ("Pneumothorax", "Effusion"):
        ui.call(f, "absent")
    assert page.is_disabled("#sign")  # one finding has no call of the reviewer yet
    assert "Pneumonia" in page.inner_text("#sign-note")
    ui.call("Pneumonia", "uncertain")
    ui.poll("!document.querySelector('#sign').disabled")
    page.fill("#report-text", page.input_value("#report-text") + "\nReviewed by ada.")
    page.click("#sign")
    page.wait_for_selector("#message:has-text('Signed')")
    ui.poll(f"!document.querySelector(\"#worklist tr[data-uid='{routine}']\")")  # left unread
    page.wait_for_selector("#signed-line:not([hidden])")
    assert "Signed by ada" in page.inner_text("#signed-line")
    assert "(version 1)" in page.inner_text("#signed-line")
    assert page.inner_text("#draft-banner").startswith("FINAL — signed by ada")
    assert page.is_hidden("#review-form") and page.is_visible("#amend")
    draft = ui.fetch(f"/api/studies/{routine}/draft")
    assert draft["status"] == 200, draft
    assert draft["json"]["final"] is True and draft["json"]["signed_by"] == "ada"
    assert draft["json"]["version"] == 1
    assert "Reviewed by ada." in draft["json"]["text"]
    assert "Reviewed by ada." in page.inner_text("#draft-text")

    # the flagged study: Pneumothorax is suggested present
    ui.open(urgent)
    page.wait_for_selector("#review-form:not([hidden])")
    assert page.is_checked(
        "#calls fieldset.call[data-finding='Pneumothorax'] input[value='present']")
    assert "flagged" in page.inner_text("#calls fieldset.call[data-finding='Pneumothorax'] legend")
    page.check("#overlay-toggle")
    page.wait_for_timeout(400)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(200)
    page.screenshot(path=str(SHOTS / "study-overlay.png"))
    ui.call("Pneumothorax", "present")
    ui.call("Effusion", "absent")
    page.locator("#review-form").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "review-form.png"))
    ui.call("Pneumonia", "absent")
    ui.poll("!document.querySelector('#sign').disabled")
    page.click("#sign")
    page.wait_for_selector("#message:has-text('Signed')")
    ui.poll(f"!document.querySelector(\"#worklist tr[data-uid='{urgent}']\")")
    assert ui.uids() == [waiting]

    # amend the signed read: version 2, and the audit list shows both
    page.wait_for_selector("#amend:not([hidden])")
    page.click("#amend")
    page.wait_for_selector("#review-form:not([hidden])")
    assert page.locator("#calls fieldset.call[data-state='confirmed']").count() == 3
    ui.call("Pneumothorax", "uncertain")
    page.click("#sign")
    page.wait_for_selector("#message:has-text('Amendment signed')")
    page.wait_for_selector("#signed-line:has-text('version 2')")
    audit = page.inner_text("#reviews")
    assert "version 2: amend by ada" in audit and "version 1: sign by ada" in audit
    reviews = list_reviews(world.engine, urgent)
    assert [(r.reviewer, r.action, r.version) for r in reviews] == [
        ("ada", "sign", 1), ("ada", "amend", 2)]
    assert reviews[0].calls == {"Pneumothorax": "present", "Effusion": "absent",
                                "Pneumonia": "absent"}
    assert reviews[1].calls["Pneumothorax"] == "uncertain"

    # the reviewed view lists both, with who signed
    page.click("#views button[data-view='reviewed']")
    ui.poll(f"!!document.querySelector(\"#worklist tr[data-uid='{routine}']\")")
    assert set(ui.uids()) == {urgent, routine}
    assert "ada" in (page.get_attribute(
        f"#worklist tr[data-uid='{routine}'] .col-status", "title") or "")
    page.click("#views button[data-view='mine']")
    ui.poll("document.querySelector('#page-info').textContent === '1–2 of 2'")
    assert set(ui.uids()) == {urgent, routine}
    assert ui.csp_errors() == []


def test_csrf_is_required_and_log_out(browser, base_url: str, world: World, ada: str) -> None:
    ui = UI(browser, base_url)
    ui.login()
    uid = world.uids["urgent"]
    body = {"result_id": 1, "calls": {}, "text": "x"}
    stale = ui.fetch(f"/api/studies/{uid}/review", "POST",
                     {"Content-Type": "application/json", "X-CSRF-Token": "stale-token"}, body)
    assert stale["status"] == 403, stale
    missing = ui.fetch(f"/api/studies/{uid}/review", "POST",
                       {"Content-Type": "application/json"}, body)
    assert missing["status"] == 403, missing
    assert list_reviews(world.engine, uid) == []
    # with the session's token: a missing call is refused (422), a second sign is 409
    csrf = ui.page.evaluate("() => state.csrf")
    assert csrf
    headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    detail = ui.fetch(f"/api/studies/{uid}")["json"]
    result_id = detail["results"][0]["id"]
    calls = {f: "absent" for f in detail["results"][0]["findings"]}
    partial = dict(list(calls.items())[:2])
    short = ui.fetch(f"/api/studies/{uid}/review", "POST", headers,
                     {"result_id": result_id, "calls": partial, "text": "x"})
    assert short["status"] == 422, short
    first = ui.fetch(f"/api/studies/{uid}/review", "POST", headers,
                     {"result_id": result_id, "calls": calls, "text": "signed by API"})
    assert first["status"] == 200, first
    assert first["json"]["reviewer"] == "ada" and first["json"]["version"] == 1
    again = ui.fetch(f"/api/studies/{uid}/review", "POST", headers,
                     {"result_id": result_id, "calls": calls, "text": "again"})
    assert again["status"] == 409 and "amend" in again["json"]["detail"], again
    stale = ui.fetch(f"/api/studies/{uid}/review", "POST", headers,
                     {"result_id": result_id + 1000, "calls": calls, "text": "x",
                      "amend": True})
    assert stale["status"] == 409, stale
    # probabilities are capped in the UI's wording
    assert ui.page.evaluate("() => [percent(0.999), percent(1), percent(0.004), percent(0.5)]"
                            ) == [">99 %", ">99 %", "<1 %", "50 %"]
    # the UI's own state-changing requests carry the token: set a priority
    ui.page.click(f"#worklist tbody tr[data-uid='{world.uids['routine']}']")
    ui.page.wait_for_selector("#detail:not([hidden])")
    ui.page.fill("#priority", "55")
    ui.page.click("#set-priority")
    ui.page.wait_for_selector("#message:has-text('Priority set to 55')")
    ui.poll(f"document.querySelector(\"#worklist tr[data-uid='{world.uids['routine']}'] .prio\")"
            ".textContent === '55 medium'")
    # log out: the session is gone
    ui.page.click("#logout")
    ui.page.wait_for_selector("#signin:not([hidden])")
    assert ui.fetch("/api/session")["status"] == 401
    assert ui.page.is_hidden("#workspace")
    assert ui.csp_errors() == []


def test_masking_search_and_paging(browser, base_url: str, world: World, ada: str) -> None:
    for i in range(55):
        world.add_study(f"extra{i}", f"P-EXTRA-{i:03d}", 100 + i)
    ui = UI(browser, base_url)
    page = ui.page
    ui.login()
    assert len(ui.uids()) == 50
    assert page.inner_text("#page-info") == "1–50 of 58"
    assert page.is_disabled("#page-prev")
    page.click("#page-next")
    ui.poll("document.querySelector('#page-info').textContent === '51–58 of 58'")
    assert len(ui.uids()) == 8
    assert page.is_disabled("#page-next")
    page.click("#page-prev")
    ui.poll("document.querySelector('#page-info').textContent === '1–50 of 58'")

    # search
    page.fill("#search", "P-URGENT")
    ui.poll("document.querySelectorAll('#worklist tbody tr').length === 1")
    assert ui.uids() == [world.uids["urgent"]]
    assert page.inner_text("#page-info") == "1–1 of 1"
    page.fill("#search", "")
    ui.poll("document.querySelectorAll('#worklist tbody tr').length === 50")

    # masking hides names and IDs in the list and the panel, and is kept for the tab
    assert "P-URGENT" in page.inner_text("#worklist")
    page.check("#mask")
    text = page.inner_text("#worklist")
    assert "P-URGENT" not in text and "Patient, Test" not in text and "Test" not in text
    assert "Patient hidden" in text
    page.reload()
    page.wait_for_selector("#worklist tbody tr")
    assert page.is_checked("#mask")
    assert "P-URGENT" not in page.inner_text("#worklist")
    page.click(f"#worklist tbody tr[data-uid='{world.uids['urgent']}']")
    ui.poll("document.querySelector('#detail-title').textContent.includes('Patient hidden')")
    assert "P-URGENT" not in page.inner_text("#detail")
    assert "ACC2" not in page.inner_text("#detail-meta")
    page.keyboard.press("Escape")
    page.locator("#mask").uncheck()
    assert "P-URGENT" in page.inner_text("#worklist")
    assert ui.csp_errors() == []


def test_a_new_urgent_study_raises_a_live_alert(browser, base_url: str, world: World,
                                                ada: str) -> None:
    world.score("waiting", {"Pneumothorax": 0.05, "Effusion": 0.1, "Pneumonia": 0.1}, 5)
    ui = UI(browser, base_url)
    page = ui.page
    ui.login()
    ui.poll("document.querySelector('#live').textContent.includes('live')", timeout=10)
    before = len(ui.uids())
    world.add_study("late", "P-LATE", 40)
    world.score("late", {"Pneumothorax": 0.97, "Effusion": 0.3, "Pneumonia": 0.2}, 95)
    late = world.uids["late"]
    page.wait_for_selector("#alerts .alert[role='alert']", timeout=15000)
    alert = page.inner_text("#alerts .alert")
    assert "New urgent study" in alert and "P-LATE" in alert and "95" in alert
    ui.poll(f"!!document.querySelector(\"#worklist tr[data-uid='{late}']\")", timeout=10)
    assert len(ui.uids()) == before + 1
    assert ui.uids()[0] == late  # highest priority first
    page.click("#alerts .alert button.dismiss")
    ui.poll("!document.querySelector('#alerts .alert')")
    assert ui.csp_errors() == []


def test_annotate_mode_labels_by_keyboard(browser, base_url: str, world: World,
                                          ada: str) -> None:
    ui = UI(browser, base_url)
    page = ui.page
    ui.login()
    routine, urgent = world.uids["routine"], world.uids["urgent"]
    page.click("#mode-annotate")
    ui.wait_rendered(routine)  # the oldest unread study first
    page.wait_for_selector("#annotate-bar:not([hidden])")
    page.wait_for_selector("#calls fieldset.call.current[data-finding='Pneumothorax']")
    page.keyboard.press("2")  # Pneumothorax absent, then the next finding
    page.keyboard.press("3")  # Effusion uncertain
    page.keyboard.press("1")  # Pneumonia present
    page.keyboard.press("ArrowUp")
    page.wait_for_selector("#calls fieldset.call.current[data-finding='Effusion']")
    page.keyboard.press("2")  # Effusion absent after all
    ui.poll("!document.querySelector('#sign').disabled")
    page.keyboard.press("Enter")  # sign, and the next study opens
    ui.wait_rendered(urgent)
    reviews = list_reviews(world.engine, routine)
    assert [(r.reviewer, r.action) for r in reviews] == [("ada", "sign")]
    assert reviews[0].calls == {"Pneumothorax": "absent", "Effusion": "absent",
                                "Pneumonia": "present"}
    page.keyboard.press("n")  # skip: nothing else is scored
    page.wait_for_selector("#message:has-text('Nothing left to annotate')")
    assert list_reviews(world.engine, urgent) == []
    page.keyboard.press("Escape")
    page.wait_for_selector("#annotate-bar[hidden]", state="attached")
    # the help lists the new keys
    page.keyboard.press("?")
    page.wait_for_selector("#help[open]")
    keys = page.inner_text("#help")
    for words in ("annotate mode", "present / absent / uncertain", "Sign", "Skip",
                  "Hide / show patient names"):
        assert words in keys, words
    page.keyboard.press("Escape")
    assert ui.csp_errors() == []


def test_agreement_view(browser, base_url: str, world: World, ada: str) -> None:
    ui = UI(browser, base_url)
    page = ui.page
    ui.login()
    csrf = ui.page.evaluate("() => state.csrf")
    headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    for name, calls in (("urgent", {"Pneumothorax": "present", "Effusion": "absent",
                                    "Pneumonia": "absent"}),
                        ("routine", {"Pneumothorax": "absent", "Effusion": "present",
                                     "Pneumonia": "absent"})):
        uid = world.uids[name]
        result_id = ui.fetch(f"/api/studies/{uid}")["json"]["results"][0]["id"]
        signed = ui.fetch(f"/api/studies/{uid}/review", "POST", headers,
                          {"result_id": result_id, "calls": calls, "text": "read"})
        assert signed["status"] == 200, signed
    answer = ui.fetch("/api/agreement")
    assert answer["status"] == 200, answer
    assert {f["finding"] for f in answer["json"]["findings"]} >= {"Pneumothorax", "Effusion"}
    page.click("#mode-agreement")
    page.wait_for_selector("#agreement:not([hidden])")
    ui.poll("document.querySelector('#agreement-info').textContent !== 'Loading…'")
    assert page.is_hidden("#worklist-section")
    rows = page.locator("#agreement-table tbody tr").count()
    assert rows == max(1, len(answer["json"]["findings"]))
    table = page.inner_text("#agreement-table")
    assert "Pneumothorax" in table and "%" in table
    assert "2 signed reads" in page.inner_text("#agreement-info")
    if answer["json"].get("warning"):
        assert page.is_visible("#agreement-warning")
    page.click("#mode-worklist")
    page.wait_for_selector("#worklist-section:not([hidden])")
    assert ui.csp_errors() == []


def test_no_serious_accessibility_violations(browser, base_url: str, world: World,
                                             ada: str) -> None:
    axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright",
                                   reason="pip install axe-playwright-python")
    # axe is injected as a script: this test's page lets it past the CSP
    ui = UI(browser, base_url, bypass_csp=True)
    axe = axe_sync.Axe()

    def serious() -> list[str]:
        result = axe.run(ui.page)
        assert result.response["passes"], "axe did not run"
        return [f"{v['id']} ({v['impact']}): {v['help']} — "
                + "; ".join(n["target"][0] for n in v["nodes"][:3])
                for v in result.response["violations"] if v["impact"] in ("serious", "critical")]

    ui.page.goto(base_url + "/")
    ui.page.wait_for_selector("#signin:not([hidden])")
    assert serious() == []  # the login form
    ui.login()
    assert serious() == []  # the worklist
    ui.open(world.uids["urgent"])
    ui.page.wait_for_selector("#review-form:not([hidden])")
    assert serious() == []
    ui.page.click("#mode-agreement")
    ui.page.wait_for_selector("#agreement:not([hidden])")
    assert serious() == []


def test_a_conflict_on_sign_says_why_and_reloads_the_panel(browser, base_url: str,
                                                          world: World, ada: str) -> None:
    ui = UI(browser, base_url)
    page = ui.page
    ui.login()
    uid = world.uids["urgent"]
    loads: list[str] = []
    page.on("request", lambda r: loads.append(r.url) if r.url.endswith(f"/studies/{uid}")
            else None)
    page.route(f"**/api/studies/{uid}/review", lambda route: route.fulfill(
        status=409, content_type="application/json",
        body='{"detail": "the study was scored again since result 1: review the new result"}'))
    ui.open(uid)
    for f in ("Pneumothorax", "Effusion", "Pneumonia"):
        ui.call(f, "absent")
    ui.poll("!document.querySelector('#sign').disabled")
    before = len(loads)
    page.click("#sign")
    page.wait_for_selector("#message.error:has-text('scored again')")
    ui.wait_rendered(uid)
    assert len(loads) > before, "the panel was not reloaded"
    # the reload starts the read again: the AI suggestions are to be confirmed anew
    page.wait_for_selector("#review-form:not([hidden])")
    assert page.locator("#calls fieldset.call[data-state='ai']").count() == 3
    assert page.is_disabled("#sign")
    assert list_reviews(world.engine, uid) == []
    assert ui.csp_errors() == []


def test_the_greyscale_importance_map_is_drawn_on_the_image_it_belongs_to(
        browser, base_url: str, world: World, ada: str) -> None:
    """heatmap_maps (8-bit maps, coloured by the viewer) are preferred over the RGB
    overlays, and heatmap_instances puts a map on its own image of the study."""
    import json
    from io import BytesIO

    import numpy as np
    from PIL import Image

    from radiolens.receiver.scp import ingest_dataset

    from .conftest import grey_dataset

    uid = world.uids["urgent"]
    second = grey_dataset("P-URGENT", 41, study_uid=uid)
    ingest_dataset(world.data_dir, world.engine, second)
    heat = np.zeros((32, 32), dtype=np.uint8)
    heat[4:20, 4:20] = 255  # attention in the upper left
    out = world.data_dir / "results" / uid
    buffer = BytesIO()
    Image.fromarray(heat, mode="L").save(buffer, format="PNG")
    (out / "heatmap_pneumothorax_map.png").write_bytes(buffer.getvalue())
    (out / "heatmaps.json").write_text(json.dumps({"Pneumothorax": {
        "map": f"results/{uid}/heatmap_pneumothorax_map.png",
        "sop_instance_uid": str(second.SOPInstanceUID)}}))

    ui = UI(browser, base_url)
    page = ui.page
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "heatmap.png" in r.url else None)
    ui.login()
    ui.open(uid)
    options = page.eval_on_selector_all("#overlay-finding option", "o => o.map(x => x.value)")
    assert options == ["Pneumothorax"]  # the maps, not the three RGB overlays
    page.check("#overlay-toggle")
    ui.poll("document.querySelector('#overlay-legend').dataset.kind === 'map'")
    assert any("kind=map" in u for u in asked), asked

    def shot() -> np.ndarray:
        png = page.locator("#viewport").screenshot()
        return np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(np.int16)

    # the first image shown is not the one the map was made on: no overlay there
    first = page.inner_text("#image-count")
    a = shot()
    page.click("#overlay-toggle")
    page.wait_for_timeout(300)
    b = shot()
    page.click("#overlay-toggle")
    page.wait_for_timeout(300)
    on_other = float(np.abs(a - b).mean())
    page.click("#image-next")
    ui.poll(f"document.querySelector('#image-count').textContent !== {first!r}")
    page.wait_for_timeout(400)
    with_map = shot()
    page.click("#overlay-toggle")
    page.wait_for_timeout(300)
    without = shot()
    on_own = float(np.abs(with_map - without).mean())
    # exactly one of the two images carries the map
    assert max(on_other, on_own) > 2 and min(on_other, on_own) < 0.5, (on_other, on_own)
    # jet colours: the overlay is coloured where attention is high (red-ish), not grey
    overlay = with_map if on_own > on_other else a
    plain = without if on_own > on_other else b
    diff = np.abs(overlay - plain).sum(axis=2)
    ys, xs = np.nonzero(diff > 30)
    assert len(xs), "the map was not drawn"
    box = page.locator("#viewport").bounding_box()
    assert box is not None
    assert xs.mean() < box["width"] / 2 and ys.mean() < box["height"] / 2  # upper left
    assert ui.csp_errors() == []


def test_an_image_that_needs_a_check_is_never_shown_as_a_finding(
        browser, base_url: str, world: World, ada: str) -> None:
    from radiolens.worklist import claim_job, mark_needs_check

    job = claim_job(world.engine, owner="test-worker")
    assert job is not None
    mark_needs_check(world.engine, job.id, "test-worker", "not a chest radiograph")
    uid = world.uids["waiting"]
    ui = UI(browser, base_url)
    page = ui.page
    ui.login()
    row = f"#worklist tr[data-uid='{uid}']"
    assert page.inner_text(f"{row} .col-status") == "check image"
    assert "not a chest radiograph" in (page.get_attribute(f"{row} .col-status", "title") or "")
    assert page.locator(f"{row} .badge.flag").count() == 0
    page.click("#views button[data-view='flagged']")
    ui.poll(f"!document.querySelector(\"{row}\")")
    assert ui.uids() == [world.uids["urgent"]]
    page.click("#views button[data-view='needs-check']")
    ui.poll(f"!!document.querySelector(\"{row}\")")
    assert ui.uids() == [uid]
    page.click(row)
    ui.poll("document.querySelector('#draft-text').textContent.includes('needs a check')")
    assert "not a chest radiograph" in page.inner_text("#draft-text")
    assert page.is_hidden("#review-form")
    assert "check image — not a chest radiograph" in page.inner_text("#detail-meta")
    assert ui.csp_errors() == []


def _viewport_pixels(page: Any) -> Any:
    from io import BytesIO

    import numpy as np
    from PIL import Image

    png = page.locator("#viewport").screenshot()
    return np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(np.int16)


def _yellow(pixels: Any) -> int:
    """How many pixels are the boxes' yellow (the radiograph itself is grey)."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(((r > 200) & (g > 170) & (b < 90)).sum())


def _drag(page: Any, a: list[float], b: list[float]) -> None:
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, steps=4)
    page.mouse.move(*b, steps=4)
    page.mouse.up()


def test_a_box_drawn_on_the_image_is_signed_in_image_pixels(browser, base_url: str,
                                                             world: World, ada: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    ui = UI(browser, base_url)
    page = ui.page
    ui.login()
    uid = world.uids["urgent"]
    source = world.sources["urgent"]
    sop, columns, rows = str(source.SOPInstanceUID), int(source.Columns), int(source.Rows)
    ui.open(uid)
    page.wait_for_selector("#review-form:not([hidden])")
    assert page.input_value("#box-finding") == "Pneumothorax"  # the AI's flag first
    ui.poll("!document.querySelector('#tool-box').disabled")
    wl = page.inner_text("#viewport-info")
    assert _yellow(_viewport_pixels(page)) == 0
    page.click("#tool-box")
    assert page.get_attribute("#tool-box", "aria-pressed") == "true"
    to_client = "([x, y]) => state.viewerNow.imageToClient(x, y)"
    a = page.evaluate(to_client, [8, 6])
    b = page.evaluate(to_client, [20, 18])
    # the pointer's page position turns into image pixels (and back)
    back = page.evaluate("([x, y]) => state.viewerNow.clientToImage(x, y)", a)
    assert abs(back["x"] - 8) < 1e-6 and abs(back["y"] - 6) < 1e-6 and back["sop"] == sop

    # the box being drawn: dashed, with its finding, over the image
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, steps=4)
    page.mouse.move(*b, steps=4)
    page.wait_for_timeout(200)
    drawing = _viewport_pixels(page)
    assert _yellow(drawing) > 50, "the box being drawn is not on the overlay"
    page.screenshot(path=str(SHOTS / "box-drawing.png"))
    page.mouse.up()
    page.wait_for_selector("#box-list li")
    assert page.locator("#box-list li").count() == 1
    assert page.inner_text("#box-list li .box-text") == "Pneumothorax: x 8, y 6, w 12, h 12 px"
    assert page.inner_text("#viewport-info") == wl  # the drag drew; window/level unchanged
    assert _yellow(_viewport_pixels(page)) > 50

    # a second box, for Effusion, dragged beyond the image: clipped to the image
    page.select_option("#box-finding", "Effusion")
    _drag(page, page.evaluate(to_client, [24, 26]), page.evaluate(to_client, [40, 45]))
    ui.poll("document.querySelectorAll('#box-list li').length === 2")
    assert page.inner_text("#box-list li:nth-child(2) .box-text") == (
        f"Effusion: x 24, y 26, w {columns - 24}, h {rows - 26} px")
    # a click (no drag) draws nothing
    page.mouse.click(*page.evaluate(to_client, [4, 4]))
    page.wait_for_timeout(200)
    assert page.locator("#box-list li").count() == 2
    page.click("#box-list li:nth-child(2) button.box-remove")
    ui.poll("document.querySelectorAll('#box-list li').length === 1")
    page.keyboard.press("b")  # the key turns the tool off again
    assert page.get_attribute("#tool-box", "aria-pressed") == "false"
    page.locator("#review-form").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "review-form-box.png"))

    for f, c in (("Pneumothorax", "present"), ("Effusion", "absent"), ("Pneumonia", "absent")):
        ui.call(f, c)
    ui.poll("!document.querySelector('#sign').disabled")
    page.click("#sign")
    page.wait_for_selector("#message:has-text('Signed')")
    assert "1 box" in page.inner_text("#message")
    page.wait_for_selector("#signed-line:not([hidden])")

    # the API has the box, in image pixels of the displayed instance, inside the image
    detail = ui.fetch(f"/api/studies/{uid}")
    assert detail["status"] == 200, detail
    signed = [r for r in detail["json"]["reviews"] if r["action"] == "sign"]
    assert len(signed) == 1
    boxes = signed[0]["boxes"]
    assert len(boxes) == 1, boxes
    box = boxes[0]
    assert box["finding"] == "Pneumothorax" and box["sop_instance_uid"] == sop
    assert box["x"] >= 0 and box["y"] >= 0
    assert box["x"] + box["w"] <= columns and box["y"] + box["h"] <= rows
    for key, want in (("x", 8), ("y", 6), ("w", 12), ("h", 12)):
        assert abs(box[key] - want) < 0.25, (key, box)
    # the version list shows it, and the signed box stays on the image
    assert "Box: Pneumothorax x 8, y 6, w 12, h 12" in page.inner_text("#reviews")
    ui.poll("state.viewerNow && document.querySelector('#tool-box').disabled")
    assert _yellow(_viewport_pixels(page)) > 50
    # the amendment starts from the signed boxes
    page.click("#amend")
    page.wait_for_selector("#review-form:not([hidden])")
    assert page.locator("#box-list li").count() == 1
    # the help lists the key
    page.click("#cancel-amend")
    page.keyboard.press("?")
    page.wait_for_selector("#help[open]")
    assert "Box tool on / off" in page.inner_text("#help")
    page.keyboard.press("Escape")
    assert ui.csp_errors() == []


def test_a_study_that_needs_a_check_is_closed_not_diagnostic(browser, base_url: str,
                                                            world: World, ada: str) -> None:
    from radiolens.worklist import claim_job, mark_needs_check

    job = claim_job(world.engine, owner="test-worker")
    assert job is not None
    mark_needs_check(world.engine, job.id, "test-worker", "the image is too dark")
    uid = world.uids["waiting"]
    ui = UI(browser, base_url)
    page = ui.page
    ui.login()
    row = f"#worklist tr[data-uid='{uid}']"
    assert uid in ui.uids()
    ui.open(uid)
    page.wait_for_selector("#close-form:not([hidden])")
    assert page.is_hidden("#review-form")
    assert page.input_value("#close-text") == "Image not diagnostic; repeat the radiograph."
    assert page.is_hidden("#close-looked-row")  # the image is on screen: no confirmation
    ui.poll("!document.querySelector('#close-sign').disabled")
    page.fill("#close-text", "")
    assert page.is_disabled("#close-sign")
    page.fill("#close-text", "Image too dark: not diagnostic. Repeat the radiograph.")
    page.screenshot(path=str(SHOTS / "close-form.png"))
    page.click("#close-sign")
    page.wait_for_selector("#message:has-text('Signed and closed')")
    ui.poll(f"!document.querySelector(\"{row}\")")  # it left the unread list
    page.wait_for_selector("#signed-line:not([hidden])")
    assert page.inner_text("#draft-banner").startswith("FINAL — signed by ada")
    assert "Image too dark" in page.inner_text("#draft-text")
    assert page.is_hidden("#close-form") and page.is_hidden("#amend")
    draft = ui.fetch(f"/api/studies/{uid}/draft")
    assert draft["status"] == 200, draft
    assert draft["json"]["final"] is True and "Image too dark" in draft["json"]["text"]
    assert ui.fetch(f"/api/studies/{uid}")["json"]["status"] == "reviewed"
    reviews = list_reviews(world.engine, uid)
    assert [(r.reviewer, r.action, r.version) for r in reviews] == [("ada", "sign", 1)]
    assert not reviews[0].calls
    page.click("#views button[data-view='needs-check']")
    ui.poll("document.querySelectorAll('#worklist tbody tr').length === 0"
            " && !document.querySelector('#empty').hidden")
    assert ui.csp_errors() == []


def test_a_check_image_study_whose_image_cannot_be_shown_needs_a_confirmation(
        browser, base_url: str, world: World, ada: str) -> None:
    from radiolens.worklist import claim_job, mark_needs_check

    job = claim_job(world.engine, owner="test-worker")
    assert job is not None
    mark_needs_check(world.engine, job.id, "test-worker", "pixel data unreadable")
    uid = world.uids["waiting"]
    ui = UI(browser, base_url)
    page = ui.page
    page.route("**/frames/1", lambda route: route.fulfill(status=500, body="broken"))
    ui.login()
    page.click(f"#worklist tbody tr[data-uid='{uid}']")
    page.wait_for_selector("#close-form:not([hidden])")
    ui.poll("!document.querySelector('#viewport-note').hidden")
    page.wait_for_selector("#close-looked-row:not([hidden])")
    assert page.is_disabled("#close-sign")
    assert "confirm that you looked" in page.inner_text("#close-note")
    page.check("#close-looked")
    ui.poll("!document.querySelector('#close-sign').disabled")
    page.click("#close-sign")
    page.wait_for_selector("#message:has-text('Signed and closed')")
    ui.poll(f"!document.querySelector(\"#worklist tr[data-uid='{uid}']\")")
    assert [r.action for r in list_reviews(world.engine, uid)] == ["sign"]
    assert not [e for e in ui.errors if e.startswith("uncaught")]
