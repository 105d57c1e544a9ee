"""The web UI in headless Chromium (Debian's /usr/bin/chromium) driven by Playwright."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from radiolens.serve import UI_DISCLAIMER, create_app
from radiolens.worklist import list_reviews

from .conftest import TOKEN, World

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_url(world: World) -> Iterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    port = _free_port()
    app = create_app(world.data_dir, world.engine, TOKEN, model_name="test-model")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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
            page.wait_for_function(
                "document.querySelector('#draft-text').textContent.length > 50")
            draft = page.inner_text("#draft-text")
            assert "pneumothorax" in draft.lower()
            page.wait_for_selector("#heatmap-figure:not([hidden])")
            assert page.get_attribute("#heatmap", "src", timeout=5000).startswith("blob:")
            page.fill("#reviewer", "dr-browser")
            page.click("#accept")
            page.wait_for_selector("text=Draft accepted.")
            page.wait_for_selector("#reviews li:has-text('dr-browser: accept')")
        finally:
            browser.close()
    reviews = list_reviews(world.engine, world.uids["urgent"])
    assert [(r.reviewer, r.action) for r in reviews] == [("dr-browser", "accept")]
