"""The study viewer (Cornerstone3D bundle) in headless Chromium, driven by Playwright.

Pixels are read from screenshots of the viewport element (the image canvas and the
heatmap canvas above it, as the user sees them) before and after each action.
"""

from __future__ import annotations

import contextlib
from io import BytesIO
from typing import Any

import numpy as np
import pytest

from radiolens.receiver.scp import ingest_dataset
from radiolens.worklist import list_results, list_reviews

from .conftest import TOKEN, World, grey_dataset, poll_page

pytestmark = pytest.mark.browser



class Page:
    """A page on the UI that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.base_url = base_url
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, study: str | None = None) -> None:
        extra = f"&study={study}" if study else ""
        self.page.goto(f"{self.base_url}/#token={TOKEN}{extra}")
        self.page.wait_for_selector("#worklist tbody tr")

    def poll(self, expression: str, timeout: float = 20.0) -> Any:
        """Wait until ``expression`` (JS) is truthy (see ``conftest.poll_page``)."""
        return poll_page(self.page, expression, timeout)

    def select(self, uid: str) -> None:
        self.page.click(f"#worklist tbody tr[data-uid='{uid}']")
        self.wait_rendered(uid)

    def wait_rendered(self, uid: str) -> None:
        self.poll(f"document.querySelector('#detail').dataset.uid === '{uid}'"
                  " && document.querySelector('#viewport').dataset.rendered !== undefined"
                  " && !document.querySelector('#viewport').classList.contains('loading')")
        self.page.wait_for_timeout(300)  # let the frame settle

    def confirm_calls(self) -> None:
        """Confirm every finding's pre-selected AI suggestion (a click on it)."""
        n = self.page.locator("#calls fieldset.call").count()
        assert n > 0, "the review form has no findings"
        for i in range(n):
            self.page.locator(f"#calls fieldset.call >> nth={i} >> input:checked").click()

    def sign(self) -> None:
        self.confirm_calls()
        self.poll("!document.querySelector('#sign').disabled")
        self.page.click("#sign")
        self.page.wait_for_selector("#message:has-text('Signed')")

    def pixels(self) -> np.ndarray:
        from PIL import Image

        png = self.page.locator("#viewport").screenshot()
        return np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(np.int16)

    def centre(self) -> tuple[float, float]:
        box = self.page.locator("#viewport").bounding_box()
        assert box is not None
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def csp_errors(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e or "uncaught" in e]


def changed(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two screenshots (0 = identical)."""
    return float(np.abs(a - b).mean())


def test_unflagged_study_renders_and_the_tools_change_the_pixels(browser, base_url: str,
                                                                 world: World) -> None:
    ui = Page(browser, base_url)
    ui.open()
    ui.page.screenshot(path="/tmp/viewer-worklist.png")
    uid = world.uids["routine"]
    ui.select(uid)
    first = ui.pixels()
    assert first.std() > 5 and first.max() > 50, "the radiograph is not drawn"
    # the image is shown: Sign now waits only for the reviewer's calls
    assert ui.page.is_disabled("#sign")
    assert "Confirm or change 3 findings" in ui.page.inner_text("#sign-note")
    assert ui.page.is_visible("#overlay-controls")  # the test world has heatmaps for all
    assert "32×32 px" in ui.page.inner_text("#viewport-info")

    # window/level: drag with the left button
    x, y = ui.centre()
    ui.page.mouse.move(x, y)
    ui.page.mouse.down()
    ui.page.mouse.move(x + 80, y + 60, steps=8)
    ui.page.mouse.up()
    ui.page.wait_for_timeout(300)
    dragged = ui.pixels()
    assert changed(first, dragged) > 2, "window/level drag did not change the image"

    # zoom: the wheel
    before_zoom = ui.page.inner_text("#viewport-info")
    ui.page.mouse.move(x, y)
    ui.page.mouse.wheel(0, -400)
    ui.page.wait_for_timeout(400)
    zoomed = ui.pixels()
    assert changed(dragged, zoomed) > 2, "the wheel did not zoom"
    assert ui.page.inner_text("#viewport-info") != before_zoom

    # invert, by the button and by the key
    ui.page.click("#tool-invert")
    ui.page.wait_for_timeout(300)
    inverted = ui.pixels()
    assert changed(zoomed, inverted) > 2
    assert ui.page.get_attribute("#tool-invert", "aria-pressed") == "true"

    # reset: back to the first picture
    ui.page.click("#tool-reset")
    ui.page.wait_for_timeout(400)
    assert changed(first, ui.pixels()) < 1.0, "reset did not restore the original view"
    assert ui.page.get_attribute("#tool-invert", "aria-pressed") == "false"

    # pan: shift-drag (or the middle button)
    ui.page.keyboard.down("Shift")
    ui.page.mouse.move(x, y)
    ui.page.mouse.down()
    ui.page.mouse.move(x + 120, y, steps=6)
    ui.page.mouse.up()
    ui.page.keyboard.up("Shift")
    ui.page.wait_for_timeout(300)
    assert changed(first, ui.pixels()) > 2, "shift-drag did not pan"
    ui.page.click("#tool-reset")
    ui.page.wait_for_timeout(300)
    assert changed(first, ui.pixels()) < 1.0

    # presets by key: full range differs from the DICOM default, 1 goes back
    ui.page.locator("#viewport").focus()
    ui.page.keyboard.press("3")
    ui.page.wait_for_timeout(300)
    assert changed(first, ui.pixels()) > 2
    ui.page.keyboard.press("1")
    ui.page.wait_for_timeout(300)
    assert changed(first, ui.pixels()) < 1.0
    ui.page.keyboard.press("i")
    ui.page.wait_for_timeout(300)
    assert changed(first, ui.pixels()) > 2
    ui.page.keyboard.press("r")
    ui.page.wait_for_timeout(300)
    assert changed(first, ui.pixels()) < 1.0

    # actual size: the 32-pixel image shrinks to 32 screen pixels; F fits it again
    ui.page.keyboard.press("a")
    ui.page.wait_for_timeout(300)
    zoom = float(ui.page.inner_text("#viewport-info").split("zoom ")[1].split("×")[0])
    assert 0 < zoom < 0.2
    ui.page.keyboard.press("f")
    ui.page.wait_for_timeout(300)
    assert "zoom 1.00×" in ui.page.inner_text("#viewport-info")
    assert ui.csp_errors() == []


def test_flagged_study_overlay_toggle_opacity_legend_and_help(browser, base_url: str,
                                                              world: World) -> None:
    ui = Page(browser, base_url)
    ui.open()
    uid = world.uids["urgent"]
    ui.select(uid)
    assert ui.page.is_visible("#overlay-controls")
    assert ui.page.is_visible("#overlay-legend .legend-bar")
    findings = ui.page.eval_on_selector_all("#overlay-finding option", "o => o.map(x => x.value)")
    assert set(findings) == {"Pneumothorax", "Effusion", "Pneumonia"}
    assert ui.page.input_value("#overlay-finding") == "Pneumothorax"  # the flagged one first
    plain = ui.pixels()
    assert plain.std() > 5

    ui.page.check("#overlay-toggle")
    ui.page.wait_for_timeout(300)
    half = ui.pixels()
    assert changed(plain, half) > 2, "the overlay did not show"

    ui.page.evaluate("""() => { const r = document.querySelector('#overlay-opacity');
        r.value = '100'; r.dispatchEvent(new Event('input', {bubbles: true})); }""")
    ui.page.wait_for_timeout(300)
    full = ui.pixels()
    assert ui.page.inner_text("#overlay-opacity-value") == "100%"
    assert changed(half, full) > 2, "the opacity did not change the overlay"
    ui.page.screenshot(path="/tmp/viewer-study-overlay.png")

    ui.page.select_option("#overlay-finding", "Effusion")
    ui.page.wait_for_timeout(400)
    assert changed(full, ui.pixels()) > 2, "another finding's heatmap is not drawn"

    # keyboard: [ lowers the opacity, h hides the overlay
    ui.page.locator("#viewport").focus()
    ui.page.keyboard.press("[")
    assert ui.page.inner_text("#overlay-opacity-value") == "90%"
    ui.page.keyboard.press("h")
    ui.page.wait_for_timeout(300)
    assert not ui.page.is_checked("#overlay-toggle")
    assert changed(plain, ui.pixels()) < 1.0

    # ? lists the shortcuts; Escape closes the list
    ui.page.keyboard.press("?")
    ui.page.wait_for_selector("#help[open]")
    keys = ui.page.inner_text("#help")
    for words in ("Invert", "Reset", "Heatmap overlay", "Zoom in", "Window presets"):
        assert words in keys
    ui.page.screenshot(path="/tmp/viewer-help.png")
    ui.page.keyboard.press("Escape")
    ui.poll("!document.querySelector('#help').open")
    assert ui.csp_errors() == []


def test_a_slow_answer_for_the_previous_study_never_shows_while_another_is_selected(
        browser, base_url: str, world: World) -> None:
    ui = Page(browser, base_url)
    a, b = world.uids["urgent"], world.uids["routine"]
    held: list[Any] = []
    ui.page.route(f"**/api/studies/{a}", lambda route: held.append(route))
    ui.open()
    ui.page.click(f"#worklist tbody tr[data-uid='{a}']")
    ui.poll(f"document.querySelector('#detail').dataset.uid === '{a}'")
    assert held, "study A's detail request was not intercepted"
    assert ui.page.is_disabled("#sign")
    ui.page.click(f"#worklist tbody tr[data-uid='{b}']")
    ui.wait_rendered(b)
    for route in held:  # A's answer arrives late (the page may have aborted it already)
        with contextlib.suppress(Exception):
            route.continue_()
    ui.page.wait_for_timeout(800)
    assert ui.page.get_attribute("#worklist tbody tr[aria-selected='true']", "data-uid") == b
    assert ui.page.get_attribute("#detail", "data-uid") == b
    assert "P-ROUTINE" in ui.page.inner_text("#detail-title")
    assert "P-URGENT" not in ui.page.inner_text("#detail")
    assert "probable pneumothorax" not in ui.page.inner_text("#draft-text").lower()
    ui.sign()
    assert [(r.reviewer, r.action) for r in list_reviews(world.engine, b)] == [
        ("admin", "sign")]
    assert list_reviews(world.engine, a) == []
    assert ui.csp_errors() == []


def test_review_needs_the_image_on_screen_and_names_the_result(browser, base_url: str,
                                                               world: World) -> None:
    ui = Page(browser, base_url)
    uid = world.uids["urgent"]
    held: list[Any] = []
    ui.page.route("**/frames/1", lambda route: held.append(route))
    bodies: list[str] = []
    ui.page.on("request", lambda r: bodies.append(r.post_data or "")
               if r.url.endswith("/review") else None)
    ui.open()
    ui.page.click(f"#worklist tbody tr[data-uid='{uid}']")
    ui.poll("document.querySelector('#draft-text').textContent.length > 50")
    for _ in range(100):  # the viewer asks for the frame after the metadata
        if held:
            break
        ui.page.wait_for_timeout(100)
    assert held, "the frame request was not intercepted"
    ui.confirm_calls()
    assert ui.page.is_disabled("#sign"), "Sign is possible before the image is shown"
    assert "once the image is displayed" in ui.page.inner_text("#sign-note")
    for route in held:
        route.continue_()
    ui.page.unroute("**/frames/1")
    ui.wait_rendered(uid)
    ui.poll("!document.querySelector('#sign').disabled")
    ui.page.click("#sign")
    ui.page.wait_for_selector("#message:has-text('Signed')")
    latest = list_results(world.engine, uid)[0].id
    assert any(f'"result_id":{latest}' in b for b in bodies), bodies
    assert [r.action for r in list_reviews(world.engine, uid)] == ["sign"]


def test_deep_link_survives_a_reload(browser, base_url: str, world: World) -> None:
    ui = Page(browser, base_url)
    uid = world.uids["urgent"]
    ui.open(study=uid)
    ui.wait_rendered(uid)
    assert "token=" not in ui.page.url
    assert ui.page.url.endswith(f"#study={uid}")
    ui.page.reload()
    ui.wait_rendered(uid)
    assert ui.page.get_attribute("#worklist tbody tr[aria-selected='true']", "data-uid") == uid
    other = world.uids["routine"]
    ui.select(other)
    assert ui.page.url.endswith(f"#study={other}")
    ui.page.evaluate(f"() => {{ window.location.hash = 'study={uid}'; }}")
    ui.wait_rendered(uid)  # editing the address opens that study


def test_refresh_keeps_focus_and_selection_and_long_names_keep_the_layout(
        browser, base_url: str, world: World) -> None:
    long_name = "Wolfeschlegelsteinhausenbergerdorffvoralternwaren^Hubertblainexyz"[:64]
    ds = grey_dataset("P-LONG-" + "9" * 50, 11)
    ds.PatientName = long_name
    ingest_dataset(world.data_dir, world.engine, ds)
    ui = Page(browser, base_url)
    ui.open()
    routine = world.uids["routine"]
    ui.select(routine)
    ui.page.focus(f"#worklist tbody tr[data-uid='{routine}']")
    ui.page.keyboard.press("ArrowUp")  # focus moves to the row above, selection stays
    focused = ui.page.evaluate("() => document.activeElement.dataset.uid")
    assert focused == world.uids["urgent"]
    world.add_study("late", "P-LATE", 12)  # the next refresh adds a row
    stamp = ui.page.inner_text("#updated")
    ui.poll(f"document.querySelector('#updated').textContent !== {stamp!r}"
            " && document.querySelectorAll('#worklist tbody tr').length === 5", timeout=15)
    assert ui.page.evaluate("() => document.activeElement.dataset.uid") == focused
    assert ui.page.get_attribute("#worklist tbody tr[aria-selected='true']", "data-uid") == routine
    assert ui.page.get_attribute("#detail", "data-uid") == routine
    # the long name neither widens the page nor the worklist
    assert ui.page.evaluate(
        "() => document.documentElement.scrollWidth <= window.innerWidth")
    table = ui.page.locator("#worklist").bounding_box()
    section = ui.page.locator(".worklist").bounding_box()
    assert table and section and table["width"] <= section["width"] + 1
    long_row = ui.page.locator("#worklist tbody tr", has_text="P-LONG").bounding_box()
    assert long_row and long_row["height"] < 80
    ui.page.click("#worklist tbody tr:has-text('P-LONG')")
    ui.poll("document.querySelector('#detail-title').textContent.includes('P-LONG')")
    assert ui.page.evaluate(
        "() => document.documentElement.scrollWidth <= window.innerWidth")


def test_every_image_of_a_study_is_shown(browser, base_url: str, world: World) -> None:
    uid = world.uids["waiting"]
    ingest_dataset(world.data_dir, world.engine, grey_dataset("P-WAITING", 21, study_uid=uid))
    ui = Page(browser, base_url)
    ui.open()
    ui.select(uid)
    assert ui.page.inner_text("#image-count") == "Image 1 of 2"
    first = ui.pixels()
    ui.page.locator("#viewport").focus()
    ui.page.keyboard.press("ArrowRight")
    ui.poll("document.querySelector('#image-count').textContent === 'Image 2 of 2'")
    ui.page.wait_for_timeout(300)
    assert changed(first, ui.pixels()) > 2
    ui.page.click("#image-prev")
    ui.poll("document.querySelector('#image-count').textContent === 'Image 1 of 2'")
    assert ui.page.is_hidden("#review-form")  # not scored: nothing to sign
    assert ui.page.is_disabled("#sign")
    assert ui.csp_errors() == []


def test_a_16_bit_monochrome1_radiograph_is_shown_with_its_own_pixels(
        browser, base_url: str, world: World) -> None:
    ds = grey_dataset("P-DX16", 31)
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (48, 1))  # dark..bright values
    ds.Rows, ds.Columns = ramp.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PhotometricInterpretation = "MONOCHROME1"  # low values are shown white
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = ramp.tobytes()
    uid, _ = ingest_dataset(world.data_dir, world.engine, ds)
    ui = Page(browser, base_url)
    ui.open()
    ui.select(uid)
    assert "64×48 px" in ui.page.inner_text("#viewport-info")
    px = ui.pixels().mean(axis=2)
    row = px[px.shape[0] // 2]
    lit = np.flatnonzero(row > 10)  # the image, not the black letterbox
    left, right = row[lit[0] + 5], row[lit[-1] - 5]
    assert left > right + 100, "MONOCHROME1: the lowest values must be drawn white"
    assert ui.csp_errors() == []


def test_an_image_that_cannot_load_says_so_and_keeps_sign_off(browser, base_url: str,
                                                                world: World) -> None:
    ui = Page(browser, base_url)
    ui.page.route("**/frames/1", lambda route: route.fulfill(status=500, body="broken"))
    ui.open()
    uid = world.uids["urgent"]
    ui.page.click(f"#worklist tbody tr[data-uid='{uid}']")
    ui.poll("!document.querySelector('#viewport-note').hidden")
    note = ui.page.inner_text("#viewport-note")
    assert "could not be shown" in note and "PACS" in note, note
    assert not [e for e in ui.errors if e.startswith("uncaught")]
    ui.page.wait_for_selector("#review-form:not([hidden])")
    ui.confirm_calls()
    assert ui.page.is_disabled("#sign")
