"""The lung outputs of a study over the API: the mask PNG, its overlay on the radiograph,
the DICOM Segmentation, and the lung check in the study JSON."""

from __future__ import annotations

import io
from typing import Any

import highdicom as hd
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update
from sqlalchemy.orm import Session

from radiolens.drafts import make_lung_seg
from radiolens.worklist import Study

from .conftest import World

WARNING = "AI attention outside the lungs: check (Pneumothorax 31 %)"


def lung_mask(shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    """Two lung fields side by side."""
    mask = np.zeros(shape, bool)
    mask[6:28, 4:14] = mask[6:28, 18:28] = True
    return mask


def add_lungs(world: World, name: str, mask: np.ndarray, *, image_check: str | None = None,
              attention: str | None = None) -> None:
    """Give a scored study of the world the lung outputs the worker writes."""
    uid, source = world.uids[name], world.sources[name]
    out = world.data_dir / "results" / uid
    Image.fromarray(mask.astype(np.uint8) * 255).save(out / "lung_mask.png")
    make_lung_seg(source, mask, model_name="builtin:lungs").save_as(
        out / "lung_seg.dcm", enforce_file_format=True)
    lungs = {"model": "builtin:lungs", "sop_instance_uid": str(source.SOPInstanceUID),
             "quality": {"ok": image_check is None,
                         "reasons": [image_check] if image_check else [],
                         "lung_fraction": float(mask.mean()), "lungs": 2},
             "heat_in_lungs": {"Pneumothorax": 0.31}, "attention_warning": attention}
    with Session(world.engine) as session, session.begin():
        session.execute(update(Study).where(Study.study_instance_uid == uid)
                        .values(lungs=lungs, image_check=image_check))


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_the_mask_its_overlay_and_the_segmentation(client: TestClient, world: World) -> None:
    mask = lung_mask()
    add_lungs(world, "urgent", mask)
    uid = world.uids["urgent"]
    base = f"/api/studies/{uid}"

    r = client.get(f"{base}/lungs.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert np.array_equal(_png(r.content) > 0, mask)

    r = client.get(f"{base}/lungs.png", params={"kind": "overlay"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    rgb = _png(r.content).astype(int)
    assert rgb.shape == (32, 32, 3)
    green = rgb[..., 1] - (rgb[..., 0] + rgb[..., 2]) / 2
    assert green[mask].mean() > green[~mask].mean() + 20  # the lungs are tinted
    source = world.sources["urgent"].pixel_array.astype(int)
    assert np.abs(rgb[~mask][:, 0] - source[~mask]).max() <= 2  # the rest: the radiograph

    r = client.get(f"{base}/seg.dcm")
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
    seg = hd.seg.segread(io.BytesIO(r.content))
    assert seg.StudyInstanceUID == uid
    assert [s[2] for s in seg.get_source_image_uids()] == [world.sources["urgent"].SOPInstanceUID]
    assert np.array_equal(seg.pixel_array.astype(bool), mask)


def test_a_study_without_lung_outputs_says_why(client: TestClient, world: World) -> None:
    routine = world.uids["routine"]  # scored without lung segmentation
    for path, what in (("lungs.png", "lung mask"), ("lungs.png?kind=overlay", "lung mask"),
                       ("seg.dcm", "lung Segmentation")):
        r = client.get(f"/api/studies/{routine}/{path}")
        assert r.status_code == 404, path
        detail = r.json()["detail"]
        assert f"has no {what}" in detail and "--lung-model none" in detail
    r = client.get(f"/api/studies/{world.uids['waiting']}/seg.dcm")
    assert r.status_code == 404 and "not scored yet" in r.json()["detail"]
    r = client.get("/api/studies/1.2.3.4/lungs.png")
    assert r.status_code == 404 and "no study" in r.json()["detail"]
    add_lungs(world, "urgent", lung_mask())
    assert client.get(f"/api/studies/{world.uids['urgent']}/lungs.png",
                      params={"kind": "outline"}).status_code == 422


@pytest.mark.parametrize("path", ["lungs.png", "seg.dcm"])
def test_the_lung_outputs_need_a_signed_in_user(world: World, path: str) -> None:
    from radiolens.serve import create_app

    add_lungs(world, "urgent", lung_mask())
    app = create_app(world.data_dir, world.engine, "another-token-0123456789")
    with TestClient(app) as anonymous:
        r = anonymous.get(f"/api/studies/{world.uids['urgent']}/{path}")
    assert r.status_code == 401


def test_the_study_json_carries_the_lung_check(client: TestClient, world: World) -> None:
    add_lungs(world, "urgent", lung_mask(), image_check="one lung is 20% of the other",
              attention=WARNING)
    uid = world.uids["urgent"]
    body: dict[str, Any] = client.get(f"/api/studies/{uid}").json()
    assert body["image_check"] == "one lung is 20% of the other"
    assert body["lung_quality"] == {"ok": False, "reasons": ["one lung is 20% of the other"],
                                    "lung_fraction": pytest.approx(lung_mask().mean())}
    assert body["heat_in_lungs"] == {"Pneumothorax": 0.31}
    assert body["attention_warning"] == WARNING
    assert body["lung_instance"] == world.sources["urgent"].SOPInstanceUID
    assert body["links"]["lungs"] == f"/api/studies/{uid}/lungs.png"
    assert body["links"]["seg"] == f"/api/studies/{uid}/seg.dcm"
    rows = {s["study_instance_uid"]: s for s in client.get("/api/studies").json()}
    assert rows[uid]["image_check"] == "one lung is 20% of the other"
    assert rows[uid]["attention_warning"] == WARNING
    routine = rows[world.uids["routine"]]
    assert routine["lung_quality"] is None and routine["image_check"] is None
    assert routine["links"]["lungs"] is None and routine["heat_in_lungs"] == {}
