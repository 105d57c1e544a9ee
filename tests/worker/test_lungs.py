"""Lung segmentation in the worker: masks and a DICOM Segmentation per scored study, the
image check, heat in the lungs, the attention warning, and the SEG sent with the SR.

The segmentation runs are real tiny MONAI U-Nets saved with ``save_seg_run``. One is
untrained (its masks are arbitrary); the others have hand-set weights, so that their
masks are known: ``dark`` marks the darker-than-average pixels (the lungs of the
synthetic radiograph below), ``none`` finds no lung at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from radiolens.errors import ConfigError
from radiolens.explain.lungs import ATTENTION_WARNING, attention_outside, heat_in_lungs
from radiolens.worker import Worker
from radiolens.worker.lungs import attention_warning, check_lung_model, lung_cautions
from radiolens.worklist import default_db_path, due_deliveries, get_study, open_worklist

SEG_ARGS = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
PACS = "PACS@127.0.0.1:11112"
TOKEN = "lung-test-token-0123456789"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _seg_run(folder: Path, mode: str) -> Path:
    """A tiny segmentation run: ``untrained``, ``dark`` (darker pixels are lung) or
    ``none`` (no lung anywhere)."""
    import torch

    from radiolens.segment.info import SegModelInfo
    from radiolens.segment.nets import build_seg_net
    from radiolens.segment.run import save_seg_run

    torch.manual_seed(0)
    net = build_seg_net("unet", **SEG_ARGS)
    if mode != "untrained":
        with torch.no_grad():
            for p in net.parameters():
                p.zero_()
            last = net.model[2].conv
            if mode == "dark":  # the input, normalised, negated: dark means lung
                net.model[0].conv.weight[0, 0, 1, 1] = 1.0
                net.model[0].adn.A.weight.fill_(1.0)
                last.weight[0, 0] = -4.0
            else:
                last.bias.fill_(-8.0)
    return save_seg_run(folder, net, SegModelInfo(architecture="unet",
                                                  architecture_args=SEG_ARGS, image_size=64))


@pytest.fixture(scope="module")
def seg_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seg-runs")
    return {mode: _seg_run(root / mode, mode) for mode in ("untrained", "dark", "none")}


def chest_pixels(h: int = 96, w: int = 88) -> np.ndarray:
    """A synthetic frontal radiograph: two dark lungs side by side in a bright body."""
    img = np.full((h, w), 205, np.uint8)
    img[15:80, 10:38] = 50
    img[15:80, 50:78] = 50
    return img


StoreChest = Callable[[], tuple[str, str]]


@pytest.fixture
def store_chest(tmp_path: Path) -> StoreChest:
    """Store one synthetic chest radiograph as a study; returns (study UID, SOP UID)."""
    from radiolens.imaging import to_secondary_capture, write_dicom_atomic
    from radiolens.receiver import instance_meta
    from radiolens.worklist import record_instance

    data_dir = tmp_path / "data"
    engine = open_worklist(default_db_path(data_dir))

    def store() -> tuple[str, str]:
        ds = to_secondary_capture(chest_pixels(), patient_id="P-LUNG", patient_name="TEST^LUNG",
                                  accession_number="A-LUNG")
        rel = Path("dicom") / str(ds.StudyInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
        write_dicom_atomic(ds, data_dir / rel)
        record_instance(engine, meta=instance_meta(ds), path=rel,
                        size=(data_dir / rel).stat().st_size)
        return str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)

    return store


def _api(data_dir: Path) -> TestClient:
    from radiolens.serve import create_app

    app = create_app(data_dir, open_worklist(default_db_path(data_dir)), TOKEN,
                     model_name="tiny")
    return TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})


def test_a_scored_study_gets_a_lung_mask_and_a_segmentation_sent_with_the_sr(
        tiny_model: Path, seg_runs: dict[str, Path], store_chest: StoreChest,
        tmp_path: Path) -> None:
    uid, sop = store_chest()
    data_dir = tmp_path / "data"
    worker = Worker(data_dir, model=str(tiny_model), lung_model=str(seg_runs["untrained"]),
                    forward_to=PACS).load()
    assert worker.run_once()
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "scored" and study.output_errors is None
    out = data_dir / "results" / uid

    mask = np.asarray(Image.open(out / "lung_mask.png"))
    assert mask.dtype == np.uint8 and mask.shape == chest_pixels().shape
    assert set(np.unique(mask)) <= {0, 255}

    seg = hd.seg.segread(out / "lung_seg.dcm")
    assert seg.SOPClassUID == SEG_CLASS and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == uid and seg.PatientID == "P-LUNG"
    assert [s[2] for s in seg.get_source_image_uids()] == [sop]
    [segment] = seg.SegmentSequence
    assert segment.SegmentLabel == "Lung"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "39607008"
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert "radiolens" in algorithm.AlgorithmName and "untrained" in algorithm.AlgorithmName
    assert str(tmp_path) not in str(seg)  # no server path in a file sent to the PACS
    assert np.array_equal(seg.pixel_array.astype(bool), mask > 0)

    deliveries = {d.kind: d.payload_path for d in due_deliveries(worker.engine_)}
    assert deliveries == {"dicom-sr": f"results/{uid}/sr.dcm",
                          "dicom-seg": f"results/{uid}/lung_seg.dcm"}

    # heat in the lungs: in heatmaps.json, in the study JSON, measured on the written files
    with _api(data_dir) as client:
        body = client.get(f"/api/studies/{uid}").json()
    assert body["lung_instance"] == sop and body["links"]["lungs"].endswith("/lungs.png")
    assert set(body["lung_quality"]) == {"ok", "reasons", "lung_fraction"}
    assert body["lung_quality"]["lung_fraction"] == pytest.approx((mask > 0).mean(), abs=1e-3)
    index = json.loads((out / "heatmaps.json").read_text())
    if (mask > 0).any():
        fraction = body["heat_in_lungs"]["pneumonia"]
        assert index["pneumonia"]["heat_in_lungs"] == pytest.approx(fraction)
        heat = np.asarray(Image.open(data_dir / index["pneumonia"]["map"])) / 255.0
        assert heat_in_lungs(heat, mask > 0) == pytest.approx(fraction, abs=0.02)
        assert (body["attention_warning"] is not None) == attention_outside(fraction)
    else:  # an empty mask measures nothing
        assert body["heat_in_lungs"] == {} and "heat_in_lungs" not in index["pneumonia"]


def test_a_plausible_mask_and_one_that_fails_the_check(
        tiny_model: Path, seg_runs: dict[str, Path], store_chest: StoreChest,
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    good, _ = store_chest()
    Worker(data_dir, model=str(tiny_model), lung_model=str(seg_runs["dark"])).load().run_once()
    bad, _ = store_chest()
    Worker(data_dir, model=str(tiny_model), lung_model=str(seg_runs["none"])).load().run_once()

    with _api(data_dir) as client:
        plausible = client.get(f"/api/studies/{good}").json()
        failed = client.get(f"/api/studies/{bad}").json()
        rows = {s["study_instance_uid"]: s for s in client.get("/api/studies").json()}
        draft = client.get(f"/api/studies/{bad}/draft").json()["text"]
    assert plausible["status"] == "scored" and plausible["image_check"] is None
    assert plausible["lung_quality"]["ok"] is True
    assert 0.3 < plausible["lung_quality"]["lung_fraction"] < 0.6  # the two dark fields
    mask = np.asarray(Image.open(data_dir / "results" / good / "lung_mask.png")) > 0
    assert mask[40, 20] and mask[40, 60] and not mask[40, 44] and not mask[5, 5]

    # the check fails, the study is scored all the same and says why
    assert failed["status"] == "scored" and failed["flags"] == ["pneumonia"]
    assert failed["findings"]["pneumonia"] >= 0 and failed["priority"] >= 50
    assert failed["image_check"] == "no lung found"
    assert failed["lung_quality"] == {"ok": False, "reasons": ["no lung found"],
                                      "lung_fraction": 0.0}
    assert rows[bad]["image_check"] == "no lung found" and rows[good]["image_check"] is None
    assert "Check image: no lung found" in draft
    study = get_study(open_worklist(default_db_path(data_dir)), bad)
    assert study is not None and study.error is None  # not an error: a check for the reader


def test_a_lung_output_that_fails_is_retried_and_then_sent(
        tiny_model: Path, seg_runs: dict[str, Path], store_chest: StoreChest,
        tmp_path: Path) -> None:
    uid, _ = store_chest()
    data_dir = tmp_path / "data"
    blocker = data_dir / "results" / uid / "lung_seg.dcm"
    (blocker / "in-the-way").mkdir(parents=True)  # a folder where the file goes
    worker = Worker(data_dir, model=str(tiny_model), lung_model=str(seg_runs["dark"]),
                    forward_to=PACS).load()
    assert worker.run_once()
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "scored"
    assert set(study.output_errors or {}) == {"lung_seg"}
    assert (data_dir / "results" / uid / "lung_mask.png").is_file()
    assert [d.kind for d in due_deliveries(worker.engine_)] == ["dicom-sr"]

    (blocker / "in-the-way").rmdir()
    blocker.rmdir()
    assert worker.retry_outputs() == 1
    study = get_study(worker.engine_, uid)
    assert study is not None and study.output_errors is None
    assert pydicom.dcmread(blocker).SOPClassUID == SEG_CLASS
    assert sorted(d.kind for d in due_deliveries(worker.engine_)) == ["dicom-seg", "dicom-sr"]


def test_a_classifier_that_crops_to_the_lungs_reuses_the_mask(
        seg_runs: dict[str, Path], store_chest: StoreChest, tmp_path: Path) -> None:
    import torch

    from radiolens.models import ModelInfo, Preprocessing, build_model, save_run

    torch.manual_seed(0)
    lung_model = str(seg_runs["dark"])
    info = ModelInfo(architecture="small-vgg", task="binary", labels=["pneumonia"],
                     preprocessing=Preprocessing(image_size=64, mean=0.5, std=0.25,
                                                 crop="lungs", lung_model=lung_model),
                     thresholds={"pneumonia": 0.0}, threshold_method="fixed:0.0")
    cropper = save_run(tmp_path / "cropper", build_model("small-vgg", 1), info)
    uid, _ = store_chest()
    worker = Worker(tmp_path / "data", model=str(cropper), lung_model=lung_model).load()
    assert worker.lungs_ is not None and worker.lungs_.feeds_classifier
    segmenter = worker.predictor_.lung_segmenter()
    assert worker.lungs_.segmenter is segmenter  # one segmenter, loaded once
    seen: list[int] = []
    real = segmenter.segment_many

    def counted(images: list[np.ndarray]) -> list[object]:
        seen.append(len(images))
        return real(images)

    segmenter.segment_many = counted  # count, and still segment for real
    assert worker.run_once()
    assert seen == [1]  # the one image, segmented once: the crop and the Grad-CAM reuse it
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "scored" and study.output_errors is None
    assert study.lungs is not None and study.lungs["quality"]["ok"] is True


def test_lung_model_none_makes_no_lung_outputs(tiny_model: Path, store_chest: StoreChest,
                                              tmp_path: Path) -> None:
    uid, _ = store_chest()
    data_dir = tmp_path / "data"
    worker = Worker(data_dir, model=str(tiny_model), lung_model="none", forward_to=PACS).load()
    assert worker.lungs_ is None and worker.run_once()
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "scored"
    assert study.lungs is None and study.image_check is None
    assert not (data_dir / "results" / uid / "lung_mask.png").exists()
    assert [d.kind for d in due_deliveries(worker.engine_)] == ["dicom-sr"]
    with _api(data_dir) as client:
        answer = client.get(f"/api/studies/{uid}/lungs.png")
    assert answer.status_code == 404 and "--lung-model none" in answer.json()["detail"]


def test_a_missing_default_lung_model_warns_once_and_scores(
        tiny_model: Path, store_chest: StoreChest, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens.models import info

    empty = tmp_path / "no-builtins"
    empty.mkdir()
    monkeypatch.setattr(info, "BUILTIN_DIR", empty)  # an install without builtin:lungs
    store_chest()
    store_chest()
    check_lung_model("builtin:lungs")  # the service starts without it
    with caplog.at_level(logging.WARNING, logger="radiolens.worker"):
        worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
        assert worker.run_once() and worker.run_once()
    warnings = [r for r in caplog.records if "builtin:lungs" in r.getMessage()]
    assert len(warnings) == 1 and "not installed" in warnings[0].getMessage()


def test_a_bad_lung_model_is_refused_before_start(tiny_model: Path, tmp_path: Path) -> None:
    check_lung_model("none")
    with pytest.raises(ConfigError, match="is a classifier"):
        check_lung_model(str(tiny_model))
    with pytest.raises(ConfigError, match=r"--lung-model .*does not exist"):
        check_lung_model(str(tmp_path / "no-such-run"))
    with pytest.raises(ConfigError, match="builtin"):
        check_lung_model("builtin:lungz")


def test_the_draft_warns_when_a_flagged_heatmap_lies_outside_the_lungs() -> None:
    import datetime as dt

    from radiolens.drafts import FindingScore, StudyResult, draft_report

    lungs = np.zeros((40, 40), bool)
    lungs[5:35, 4:16] = lungs[5:35, 24:36] = True
    heat = np.zeros((40, 40))
    heat[30:40, 14:26] = 1.0  # below and between the lungs (the heart, a marker)
    outside = heat_in_lungs(heat, lungs)
    inside = heat_in_lungs(np.where(lungs, 1.0, 0.0), lungs)
    assert outside is not None and outside < 0.5 and inside == 1.0

    def draft(fractions: dict[str, float], flags: list[str]) -> str:
        result = StudyResult(
            study_instance_uid="1.2.3", patient_id="P1", model_name="cxr", model_version="1",
            scored_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            findings=(FindingScore("Pneumonia", 0.9, 0.5, "Pneumonia" in flags),
                      FindingScore("Effusion", 0.2, 0.5, "Effusion" in flags)),
            cautions=lung_cautions(flags, fractions, None))
        return draft_report(result).full_text

    text = draft({"Pneumonia": outside}, ["Pneumonia"])
    assert ATTENTION_WARNING == "AI attention outside the lungs: check"
    assert ATTENTION_WARNING in text
    assert f"(pneumonia: {round(outside * 100)} % of the heatmap lies inside the lungs)" in text
    findings = text.split("FINDINGS:")[1].split("IMPRESSION:")[0]
    assert findings.index("pneumonia (AI probability") < findings.index(ATTENTION_WARNING)
    assert ATTENTION_WARNING not in draft({"Pneumonia": inside}, ["Pneumonia"])
    assert ATTENTION_WARNING not in draft({"Effusion": outside}, ["Pneumonia"])  # not flagged
    assert attention_warning(["Pneumonia"], {"Pneumonia": outside}) == (
        f"{ATTENTION_WARNING} (Pneumonia {round(outside * 100)} %)")
    assert attention_warning(["Pneumonia"], {"Pneumonia": inside}) is None


@pytest.mark.pacs
def test_the_segmentation_arrives_in_a_pacs_with_the_sr(
        tiny_model: Path, seg_runs: dict[str, Path], store_chest: StoreChest,
        tmp_path: Path) -> None:
    from ..dicomnet.synthetic import orthanc_binary, run_orthanc

    if orthanc_binary() is None:
        pytest.skip("Orthanc is not installed: apt-get install orthanc")
    uid, _ = store_chest()
    (tmp_path / "orthanc").mkdir()
    with run_orthanc(tmp_path / "orthanc", {}) as orthanc:
        worker = Worker(tmp_path / "data", model=str(tiny_model),
                        lung_model=str(seg_runs["dark"]),
                        forward_to=f"ORTHANC@127.0.0.1:{orthanc.dicom_port}").load()
        assert worker.run_once()
        assert worker.deliver_due() == 2  # the SR and the lung Segmentation
        found = orthanc.call("POST", "/tools/find", {
            "Level": "Instance", "Query": {"StudyInstanceUID": uid, "Modality": "SEG"}})
        [seg_id] = found
        tags = orthanc.call("GET", f"/instances/{seg_id}/simplified-tags")
    assert tags["SOPClassUID"] == SEG_CLASS and tags["StudyInstanceUID"] == uid
    assert due_deliveries(worker.engine_) == []
