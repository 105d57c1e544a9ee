"""A patient with a known name, id and birth date pushed through the service's error paths:
no log line (at -vv, every process of ``radiolens serve``) and no API error holds them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from ..dicomnet.synthetic import STORESCU, free_port, make_dataset, needs_dcmtk

pytestmark = [pytest.mark.slow, pytest.mark.pacs, needs_dcmtk]

NAME, GIVEN, PID, BIRTH = "PROBESECRET", "HIDDENGIVEN", "PID-12345-XYZ", "19230417"
TOKEN = "privacy-test-token"


def _patient(ds, birth: str = BIRTH):  # type: ignore[no-untyped-def]
    ds.PatientName = f"{NAME}^{GIVEN}"
    ds.PatientID = PID
    ds.PatientBirthDate = birth
    ds.StudyDate = "20261399"  # a malformed header date: must not fail triage
    return ds


def _write(ds, path: Path) -> Path:  # type: ignore[no-untyped-def]
    ds.save_as(path, enforce_file_format=True)
    return path


def test_no_patient_value_reaches_a_log_line_or_an_error(tmp_path: Path) -> None:
    http_port, dicom_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    env = dict(os.environ, RADIOLENS_API_TOKEN=TOKEN)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "radiolens"), "-vv", "serve", "--data-dir",
             str(tmp_path / "data"), "--http-port", str(http_port), "--dicom-port",
             str(dicom_port)], stdout=out, stderr=subprocess.STDOUT, env=env,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        api = f"http://127.0.0.1:{http_port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        files = {
            "ok": make_dataset(seed="privacy-ok", size=128),
            "bad-date": _patient(make_dataset(seed="privacy-date", size=128), "00000000"),
            "colour": make_dataset(seed="privacy-colour", colour=True),
            "truncated": make_dataset(seed="privacy-trunc", truncate=True),
            "no-pixels": make_dataset(seed="privacy-nopix", pixels=False),
            "blank": make_dataset(seed="privacy-blank", size=128),
        }
        files["blank"].PixelData = bytes(len(files["blank"].PixelData))  # input gate
        paths = [_write(_patient(ds) if k not in ("bad-date",) else ds, tmp_path / f"{k}.dcm")
                 for k, ds in files.items()]
        for path in paths:  # one association each: a refusal must not stop the others
            subprocess.run([str(STORESCU), "-aec", "RADIOLENS", "127.0.0.1", str(dicom_port),
                            str(path)], capture_output=True, timeout=60, check=False)
        # a refused upload (colour PNG) with the patient fields and a revealing file name
        rgb = Image.fromarray(np.zeros((80, 80, 3), dtype=np.uint8), mode="RGB")
        buffer = BytesIO()
        rgb.save(buffer, format="PNG")
        r = httpx.post(f"{api}/api/upload", headers=auth, timeout=60,
                       files={"files": (f"{NAME}_{PID}.png", buffer.getvalue(), "image/png")},
                       data={"patient_id": PID, "patient_name": f"{NAME}^{GIVEN}"})
        assert r.status_code in (200, 422)
        # wait until the worker has dealt with every stored study
        while True:
            studies = httpx.get(f"{api}/api/studies?view=all", headers=auth, timeout=30).json()
            if studies and all(s["status"] in ("scored", "needs-check", "failed")
                               for s in studies):
                break
            assert time.monotonic() < deadline + 240, studies
            time.sleep(1)
        statuses = {s["status"] for s in studies}
        assert "scored" in statuses and "needs-check" in statuses
        details = [httpx.get(f"{api}/api/studies/{s['study_instance_uid']}", headers=auth,
                             timeout=30).text for s in studies]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text(errors="replace")
    assert "radiolens triage service" in text  # the log was captured, from every part:
    assert "refused" in text.lower() and "study" in text.lower()  # receiver and worker
    for secret in (NAME, GIVEN, PID, BIRTH, "00000000"):
        leaked = [ln for ln in text.splitlines() if secret in ln]
        assert not leaked, f"{secret!r} reached the log: {leaked[:3]}"
        for detail in details:  # study.error and the rest of the detail
            error = detail.split('"error":', 1)[-1].split(',"model_name"', 1)[0]
            assert secret not in error
    assert str(tmp_path) not in "".join(details)  # no absolute paths in what users see
