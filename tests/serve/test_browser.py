"""The web UI in headless Chromium (Debian's /usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

import pytest

from radiolens.serve import UI_DISCLAIMER
from radiolens.worklist import list_reviews

from .conftest import CHROMIUM, FLAGS, TOKEN, World

pytestmark = pytest.mark.browser



def _poll(page, expression: str, timeout_ms: int = 20000) -> None:
    """Wait until a JS expression is truthy. Not page.wait_for_function: it polls with
    eval, which the UI's CSP (script-src 'self') refuses."""
    for _ in range(timeout_ms // 100):
        if page.evaluate(f"() => {expression}"):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {expression}")


def test_worklist_review_flow(base_url: str, world: World) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{base_url}/#token={TOKEN}")
            page.wait_for_selector("#worklist tbody tr")
            uids = page.eval_on_selector_all(
                "#worklist tbody tr", "rows => rows.map(r => r.dataset.uid)")
            assert uids == [world.uids["urgent"], world.uids["routine"], world.uids["waiting"]]
            assert "token=" not in page.url  # the token leaves the address bar
            # EventSource cannot send the bearer token: the service token polls instead
            assert "5 s" in page.inner_text("#live")
            assert "Signed in as admin" in " ".join(page.inner_text("#whoami").split())
            first = page.locator("#worklist tbody tr").first
            assert "Pneumothorax" in first.locator(".badge.flag").inner_text()
            first.click()
            page.wait_for_selector("#detail:not([hidden])")
            assert page.inner_text("#draft-banner") == UI_DISCLAIMER
            _poll(page, "document.querySelector('#draft-text').textContent.length > 50")
            draft = page.inner_text("#draft-text")
            assert "pneumothorax" in draft.lower()
            # the heatmap is an overlay on the viewer, the flagged finding first
            page.wait_for_selector("#overlay-controls:not([hidden])")
            assert page.input_value("#overlay-finding") == "Pneumothorax"
            # Sign becomes possible once the radiograph has been drawn and every finding
            # has the reviewer's call (the AI's suggestion is pre-selected, not counted)
            page.wait_for_selector("#review-form:not([hidden])")
            assert page.is_disabled("#sign")
            assert "AI suggestion" in page.inner_text("#calls")
            _poll(page, "document.querySelector('#viewport').dataset.rendered !== undefined")
            for i in range(page.locator("#calls fieldset.call").count()):
                page.locator(f"#calls fieldset.call >> nth={i} >> input:checked").click()
            _poll(page, "!document.querySelector('#sign').disabled")
            page.click("#sign")
            page.wait_for_selector("#message:has-text('Signed')")
            page.wait_for_selector("#reviews li:has-text('sign by admin')")
        finally:
            browser.close()
    reviews = list_reviews(world.engine, world.uids["urgent"])
    assert [(r.reviewer, r.action) for r in reviews] == [("admin", "sign")]
