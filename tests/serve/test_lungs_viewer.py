"""The "Lungs" toggle of the workspace viewer and the lung checks on the worklist, in
headless Chromium (Playwright). Screenshots are left in /tmp/radiolens-lungs-*.png."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import numpy as np
import pytest

from .conftest import TOKEN, World, poll_page
from .test_lungs import WARNING, add_lungs, lung_mask

pytestmark = pytest.mark.browser

SHOT = "/tmp/radiolens-lungs-viewer.png"
ROW_SHOT = "/tmp/radiolens-lungs-worklist.png"
CHECK = "one lung is 20% of the other"


def _pixels(page: Any) -> np.ndarray:
    from PIL import Image

    png = page.locator("#viewport").screenshot()
    return np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(np.int16)


def test_the_lungs_toggle_draws_the_mask_on_its_image(browser: Any, base_url: str,
                                                      world: World) -> None:
    add_lungs(world, "urgent", lung_mask(), image_check=CHECK, attention=WARNING)
    uid = world.uids["urgent"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.goto(f"{base_url}/#token={TOKEN}")
    page.wait_for_selector("#worklist tbody tr")

    # the worklist row says what the lung check found
    row = f"#worklist tbody tr[data-uid='{uid}']"
    notes = page.inner_text(f"{row} .col-flags")
    assert f"check image: {CHECK}" in notes and WARNING in notes
    routine = world.uids["routine"]
    assert page.locator(f"#worklist tr[data-uid='{routine}'] .row-note").count() == 0
    page.screenshot(path=ROW_SHOT)

    page.click(row)
    poll_page(page, f"document.querySelector('#detail').dataset.uid === '{uid}'"
                    " && document.querySelector('#viewport').dataset.rendered !== undefined"
                    " && !document.querySelector('#viewport').classList.contains('loading')")
    page.wait_for_timeout(300)
    meta = page.inner_text("#detail-meta")
    assert f"check image: {CHECK}" in meta and WARNING in meta
    assert page.is_visible("#tool-lungs")
    assert page.get_attribute("#tool-lungs", "aria-pressed") == "false"
    assert page.locator("#viewport canvas.viewer-lungs").is_hidden()
    plain = _pixels(page)

    page.click("#tool-lungs")
    poll_page(page, "document.querySelector('#viewport').dataset.lungs === 'shown'")
    page.wait_for_timeout(300)
    assert page.get_attribute("#tool-lungs", "aria-pressed") == "true"
    assert page.locator("#viewport canvas.viewer-lungs").is_visible()
    with_lungs = _pixels(page)
    page.screenshot(path=SHOT)
    diff = np.abs(with_lungs - plain).sum(axis=2)
    _, xs = np.nonzero(diff > 20)
    assert len(xs) > 500, "the lung layer was not drawn"
    greener = (with_lungs[..., 1] - plain[..., 1])[diff > 20]
    assert greener.mean() > 10  # a green tint and outline
    # drawn over the image, on both sides of the midline (two lungs)
    box = page.locator("#viewport").bounding_box()
    assert box is not None
    middle = box["width"] / 2
    assert (xs < middle).sum() > 100 and (xs > middle).sum() > 100

    page.locator("#viewport").focus()
    page.keyboard.press("l")  # the key toggles it off again
    poll_page(page, "document.querySelector('#viewport').dataset.lungs === 'hidden'")
    page.wait_for_timeout(300)
    assert page.get_attribute("#tool-lungs", "aria-pressed") == "false"
    assert float(np.abs(_pixels(page) - plain).mean()) < 1.0

    # a study without a lung mask has no Lungs button
    page.click(f"#worklist tbody tr[data-uid='{routine}']")
    poll_page(page, f"document.querySelector('#detail').dataset.uid === '{routine}'"
                    " && !document.querySelector('#viewport').classList.contains('loading')")
    assert page.is_hidden("#tool-lungs")
    assert [e for e in errors if "Content Security Policy" in e or "uncaught" in e] == []
    page.close()


def test_the_lung_checks_and_toggle_pass_axe(browser: Any, base_url: str,
                                             world: World) -> None:
    axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright",
                                   reason="pip install axe-playwright-python")
    add_lungs(world, "urgent", lung_mask(), image_check=CHECK, attention=WARNING)
    uid = world.uids["urgent"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    page = context.new_page()  # axe is injected as a script: this page lets it past the CSP
    axe = axe_sync.Axe()

    def serious() -> list[str]:
        result = axe.run(page)
        assert result.response["passes"], "axe did not run"
        return [f"{v['id']} ({v['impact']}): {v['help']} — "
                + "; ".join(n["target"][0] for n in v["nodes"][:3])
                for v in result.response["violations"] if v["impact"] in ("serious", "critical")]

    page.goto(f"{base_url}/#token={TOKEN}")
    page.wait_for_selector(f"#worklist tbody tr[data-uid='{uid}'] .row-note")
    assert serious() == []  # the worklist with the lung notes
    page.click(f"#worklist tbody tr[data-uid='{uid}']")
    poll_page(page, f"document.querySelector('#detail').dataset.uid === '{uid}'"
                    " && !document.querySelector('#viewport').classList.contains('loading')")
    page.click("#tool-lungs")
    poll_page(page, "document.querySelector('#viewport').dataset.lungs === 'shown'")
    assert serious() == []  # the study with the Lungs layer on
    context.close()
