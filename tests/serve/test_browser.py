"""The web UI in headless Chromium (Debian's /usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiolens.serve import UI_DISCLAIMER
from radiolens.worklist import list_reviews

from .conftest import TOKEN, World

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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
            # Accept becomes possible once the radiograph has been drawn
            page.wait_for_selector("#accept:not([disabled])", timeout=20000)
            assert page.get_attribute("#viewport", "data-rendered") is not None
            page.fill("#reviewer", "dr-browser")
            page.click("#accept")
            page.wait_for_selector("text=Draft accepted.")
            page.wait_for_selector("#reviews li:has-text('dr-browser: accept')")
        finally:
            browser.close()
    reviews = list_reviews(world.engine, world.uids["urgent"])
    assert [(r.reviewer, r.action) for r in reviews] == [("dr-browser", "accept")]
