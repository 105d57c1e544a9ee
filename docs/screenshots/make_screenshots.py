"""Make the docs screenshots of the web UI on real radiographs (not a test).

    .venv/bin/python docs/screenshots/make_screenshots.py [DATA_ROOT] [WORK_DIR]

DATA_ROOT holds the public radiographs named in README.md (default /work/shared/data);
WORK_DIR is a scratch directory for the made-up service (default: a temporary one).
Patients, IDs and AI results are invented; the heatmaps are synthetic blobs, not model
outputs. Writes worklist.png, study-overlay.png and review-form.png next to this file.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import uvicorn  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from tests.serve.conftest import TOKEN, World, free_port  # noqa: E402

from radiolens.explain import overlay_heatmap  # noqa: E402
from radiolens.imaging import to_secondary_capture  # noqa: E402
from radiolens.receiver.scp import ingest_dataset  # noqa: E402
from radiolens.serve import create_app  # noqa: E402
from radiolens.worklist import open_worklist  # noqa: E402
from radiolens.worklist.accounts import add_user  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data")
    root = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp())
    w = World(root / "data", open_worklist(root / "data" / "worklist.db"))
    add_user(w.engine, "ada", "reviewer", PASSWORD)

    def add(name: str, pid: str, pname: str, img: Path, acc: str, age: str, sex: str):
        px = np.asarray(Image.open(img).convert("L"))
        ds = to_secondary_capture(px, patient_id=pid, patient_name=pname, accession_number=acc)
        ds.PatientAge, ds.PatientSex = age, sex
        # the service works the age out from the birth date (on the study date)
        ds.PatientBirthDate = f"{time.gmtime().tm_year - int(age[:3]) - 1}0704"
        uid, _ = ingest_dataset(w.data_dir, w.engine, ds)
        w.uids[name] = uid
        w.sources[name] = ds
        return px, ds

    px, ds = add("urgent", "P-1041", "Doe^Jane",
                 data / "covid_chestxray_ieee8023/images/40779_2020_233_Fig2_HTML-a.png",
                 "ACC1041", "067Y", "F")
    w.score("urgent", {"Pneumonia": 0.81, "Effusion": 0.34, "Pneumothorax": 0.07}, 85)
    h, wd = px.shape
    yy, xx = np.mgrid[0:h, 0:wd]
    blobs = {"Pneumonia": [(0.62, 0.33, 0.12), (0.55, 0.66, 0.08)]}
    out = w.data_dir / "results" / w.uids["urgent"]
    index = {}
    for f, bl in blobs.items():
        heat = sum(np.exp(-(((yy / h - cy) ** 2 + (xx / wd - cx) ** 2) / (2 * s * s)))
                   for cy, cx, s in bl)
        heat = heat / heat.max()
        Image.fromarray(overlay_heatmap(px / 255.0, heat)).save(out / f"heatmap_{f.lower()}.png")
        Image.fromarray((heat * 255).round().astype(np.uint8), mode="L").save(
            out / f"heatmap_{f.lower()}_map.png")
        index[f] = {"map": f"results/{w.uids['urgent']}/heatmap_{f.lower()}_map.png",
                    "sop_instance_uid": str(ds.SOPInstanceUID)}
    (out / "heatmaps.json").write_text(json.dumps(index))
    normal = data / "kermany_pneumonia/images/NORMAL"
    add("moderate", "P-1733", "Okafor^Chidi", normal / "IM-0119-0001.png", "ACC1733", "004Y", "M")
    w.score("moderate", {"Pneumonia": 0.58, "Effusion": 0.21, "Pneumothorax": 0.04}, 62)
    add("routine", "P-2210", "Smith^John", normal / "IM-0115-0001.png", "ACC2210", "003Y", "M")
    w.score("routine", {"Pneumonia": 0.12, "Effusion": 0.08, "Pneumothorax": 0.003}, 12)
    add("waiting", "P-3307", "Nguyen^Thi Minh Khai",
        normal / "IM-0117-0001.png", "ACC3307", "006Y", "F")

    port = free_port()
    app = create_app(w.data_dir, w.engine, TOKEN, model_name="densenet121-cxr14")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS, headless=True)
            page = b.new_page(viewport={"width": 1440, "height": 960})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                    if r.status >= 400 else None)
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#login-name", "ada")
            page.fill("#login-password", PASSWORD)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#worklist tbody tr")
            page.wait_for_timeout(800)
            page.screenshot(path=str(HERE / "worklist.png"))
            page.click(f"#worklist tbody tr[data-uid='{w.uids['urgent']}']")
            page.wait_for_selector("#review-form:not([hidden])")
            for _ in range(300):
                if page.evaluate("() => !document.querySelector('#sign-note')"
                                 ".textContent.includes('once the image')"):
                    break
                page.wait_for_timeout(100)
            page.check("#overlay-toggle")
            page.evaluate("() => { const r = document.querySelector('#overlay-opacity');"
                          " r.value = '60'; r.dispatchEvent(new Event('input')); }")
            page.wait_for_timeout(800)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_timeout(300)
            page.screenshot(path=str(HERE / "study-overlay.png"))
            page.click("#calls fieldset.call[data-finding='Pneumonia'] input[value='present']")
            page.click("#calls fieldset.call[data-finding='Effusion'] input[value='uncertain']")
            # a box around the (synthetic) Pneumonia blob, drawn with the Box tool
            page.click("#tool-box")
            to_client = "([x, y]) => state.viewerNow.imageToClient(x, y)"
            p0 = page.evaluate(to_client, [0.33 * wd - 0.13 * wd, 0.62 * h - 0.13 * h])
            p1 = page.evaluate(to_client, [0.33 * wd + 0.13 * wd, 0.62 * h + 0.13 * h])
            page.mouse.move(*p0)
            page.mouse.down()
            page.mouse.move(*p1, steps=8)
            page.mouse.up()
            page.wait_for_selector("#box-list li")
            page.click("#tool-box")
            page.locator("#review-form").scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            page.screenshot(path=str(HERE / "review-form.png"))
            if errors:
                print("\n".join(errors))
            b.close()
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
