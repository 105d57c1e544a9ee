"""A data directory and SQLite worklist filled through the repository, and an API client.

The world holds three studies: ``urgent`` (scored, Pneumothorax flagged, priority 90,
with a heatmap, draft, SR and FHIR bundle on disk), ``routine`` (scored, nothing
flagged, priority 10) and ``waiting`` (queued, not scored).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydicom import Dataset
from sqlalchemy import Engine

from radiolens.drafts import FindingScore, StudyResult, draft_report
from radiolens.imaging import to_secondary_capture
from radiolens.receiver.scp import ingest_dataset
from radiolens.runtime.settings import API_SHUTDOWN_GRACE_S
from radiolens.serve import create_app
from radiolens.worklist import claim_job, complete_job, get_study, open_worklist

TOKEN = "test-token-0123456789"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWER = Path(__file__).parents[2] / "src/radiolens/serve/static/viewer/viewer.js"
THRESHOLDS = {"Pneumothorax": 0.5, "Effusion": 0.5, "Pneumonia": 0.5}


def grey_dataset(patient_id: str, seed: int, study_uid: str | None = None) -> Dataset:
    """A small greyscale Secondary Capture radiograph for one patient."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    return to_secondary_capture(pixels, patient_id=patient_id, patient_name="Test^Patient",
                                study_instance_uid=study_uid, accession_number=f"ACC{seed}")


def png_bytes(seed: int = 0, size: int = 24, mode: str = "L") -> bytes:
    """A tiny PNG image."""
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    img = Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode)
    buffer = BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def encode(ds: Dataset) -> bytes:
    """The dataset as a DICOM file."""
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass
class World:
    """The data directory, worklist and the UIDs of the studies put in it."""

    data_dir: Path
    engine: Engine
    uids: dict[str, str] = field(default_factory=dict)
    sources: dict[str, Dataset] = field(default_factory=dict)

    def add_study(self, name: str, patient_id: str, seed: int) -> str:
        """Store one instance through ingest_dataset; the study is queued."""
        ds = grey_dataset(patient_id, seed)
        uid, created = ingest_dataset(self.data_dir, self.engine, ds)
        assert created
        self.uids[name] = uid
        self.sources[name] = ds
        return uid

    def score(
        self,
        name: str,
        findings: dict[str, float],
        priority: int,
        *,
        files: bool = True,
        heatmap_paths: dict[str, str] | None = None,
        sr_path: str | None = None,
    ) -> None:
        """Claim the study's job and complete it with a fake result (and its files)."""
        uid = self.uids[name]
        job = claim_job(self.engine, owner="test-worker")
        study = get_study(self.engine, uid)
        assert job is not None and study is not None
        assert job.study_fk == study.id, "another study's job came first: raise its priority"
        flags = [k for k, v in findings.items() if v >= THRESHOLDS[k]]
        rel = Path("results") / uid
        out = self.data_dir / rel
        draft_text = None
        if files:
            out.mkdir(parents=True, exist_ok=True)
            result = StudyResult(
                study_instance_uid=uid, patient_id=str(self.sources[name].PatientID),
                model_name="test-model", model_version="0.0.1",
                findings=tuple(FindingScore(k, v, THRESHOLDS[k], k in flags)
                               for k, v in findings.items()),
                priority=priority, scored_at=dt.datetime.now(dt.UTC),
            )
            draft = draft_report(result)
            draft_text = draft.full_text
            (out / "draft.txt").write_text(draft_text, encoding="utf-8")
            from radiolens.drafts import make_fhir_bundle, make_sr

            (out / "fhir.json").write_text(json.dumps(make_fhir_bundle(result, draft)))
            make_sr(result, [self.sources[name]], draft).save_as(
                out / "sr.dcm", enforce_file_format=True)
            heatmap_paths = {}
            for i, finding in enumerate(findings):
                png = out / f"heatmap_{finding.lower()}.png"
                png.write_bytes(png_bytes(seed=i, mode="RGB"))
                heatmap_paths[finding] = str(rel / png.name)
            sr_path = str(rel / "sr.dcm")
        complete_job(
            self.engine, job.id, "test-worker", model="test-model", model_version="0.0.1",
            findings=findings, flags=flags, thresholds=THRESHOLDS, priority=priority,
            heatmap_paths=heatmap_paths or {}, draft_text=draft_text, sr_path=sr_path,
        )


def make_world(data_dir: Path) -> World:
    """The three studies of the module docstring in a new worklist under ``data_dir``."""
    w = World(data_dir, open_worklist(data_dir / "worklist.db"))
    w.add_study("routine", "P-ROUTINE", 1)
    w.score("routine", {"Pneumothorax": 0.1, "Effusion": 0.2, "Pneumonia": 0.3}, 10)
    w.add_study("urgent", "P-URGENT", 2)
    w.score("urgent", {"Pneumothorax": 0.93, "Effusion": 0.4, "Pneumonia": 0.2}, 90)
    w.add_study("waiting", "P-WAITING", 3)
    return w


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path / "data")
    yield w
    w.engine.dispose()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    app = create_app(world.data_dir, world.engine, TOKEN, model_name="test-model",
                     dicom_port=11112)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_url(world: World) -> Iterator[str]:
    """The app served by a real uvicorn on a free loopback port (stopped after the test)."""
    uvicorn = pytest.importorskip("uvicorn")
    port = free_port()
    app = create_app(world.data_dir, world.engine, TOKEN, model_name="test-model")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=API_SHUTDOWN_GRACE_S))
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


#: Headless Chromium from Debian, driven by Playwright (skipped with the reason without it).
@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not VIEWER.exists():
        pytest.skip("the viewer bundle is missing: run `make ui`")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def poll_page(page: Any, expression: str, timeout: float = 20.0) -> Any:
    """Wait until ``expression`` (JS) is truthy in ``page``; polled with page.evaluate,
    never eval-based waiting (the UI's CSP forbids eval)."""
    waited = 0.0
    while waited < timeout:
        value = page.evaluate(f"() => {expression}")
        if value:
            return value
        page.wait_for_timeout(100)
        waited += 0.1
    raise AssertionError(f"timed out waiting for {expression}")
