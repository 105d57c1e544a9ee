"""Score one study: predictions, Grad-CAM heatmaps, priority, and the draft outputs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radiolens.errors import ImageReadError, RadiolensError
from radiolens.worker.policy import TriagePolicy

__all__ = ["ScoredStudy", "score_study"]

logger = logging.getLogger(__name__)


@dataclass
class ScoredStudy:
    """What :func:`score_study` produced for the worklist."""

    findings: dict[str, float]
    flags: list[str]
    thresholds: dict[str, float]
    priority: int
    heatmap_paths: dict[str, str]
    draft_text: str
    sr_path: str | None
    fhir_path: str | None
    hl7_path: str | None
    heatmap_sc_paths: dict[str, str]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "finding"


def _write(path: Path, data: bytes) -> None:
    from radiolens.receiver.scp import _write_atomic

    _write_atomic(path, data)


def score_study(data_dir: Path, study_uid: str, instance_paths: list[str], predictor: Any,
                policy: TriagePolicy, model_name: str, *, heatmaps: bool = True) -> ScoredStudy:
    """Score every image of a study and write the results under ``results/<uid>/``.

    The study's probability for a finding is the highest over its images; the heatmap of
    a flagged finding is made on the image that scored highest for it.

    Raises:
        ImageReadError: no image of the study can be read.
    """
    import pydicom
    from PIL import Image

    from radiolens import __version__
    from radiolens.drafts import (
        FindingScore,
        StudyResult,
        draft_report,
        make_fhir_bundle,
        make_heatmap_sc,
        make_oru,
        make_sr,
    )
    from radiolens.explain import overlay_heatmap
    from radiolens.imaging import read_image

    images, datasets, errors = [], [], []
    for rel in instance_paths:
        path = data_dir / rel
        try:
            images.append(read_image(path))
            datasets.append(pydicom.dcmread(path, stop_before_pixels=False))
        except (ImageReadError, OSError, pydicom.errors.InvalidDicomError) as exc:
            errors.append(str(exc))
    if not images:
        raise ImageReadError(f"study {study_uid}: no readable image ("
                             + "; ".join(errors[:3]) + ")")
    if errors:
        logger.warning("study %s: %d images unreadable: %s", study_uid, len(errors), errors[0])
    preds = predictor.predict(images)
    labels: list[str] = predictor.labels
    matrix = np.array([[p.probabilities[n] for n in labels] for p in preds])
    best_image = matrix.argmax(axis=0)
    findings = {n: float(matrix[:, j].max()) for j, n in enumerate(labels)}
    flags = [n for n in labels if policy.is_flagged(n, findings[n])]
    priority = policy.priority(findings)

    out_dir = data_dir / "results" / study_uid
    out_dir.mkdir(parents=True, exist_ok=True)
    rel_dir = Path("results") / study_uid
    heatmap_paths: dict[str, str] = {}
    heatmap_sc_paths: dict[str, str] = {}
    explain = flags  # a heatmap for each flagged finding (Grad-CAM costs a backward pass)
    if heatmaps:
        for name in explain:
            idx = int(best_image[labels.index(name)])
            heat = predictor.explain(images[idx], name)
            rgb = overlay_heatmap(images[idx].pixels, heat)
            png = out_dir / f"heatmap_{_slug(name)}.png"
            Image.fromarray(rgb).save(png)
            heatmap_paths[name] = str(rel_dir / png.name)
            if name in flags:
                try:
                    sc = make_heatmap_sc(datasets[idx], rgb)
                    sc_path = out_dir / f"heatmap_{_slug(name)}_sc.dcm"
                    sc.save_as(sc_path, enforce_file_format=True)
                    heatmap_sc_paths[name] = str(rel_dir / sc_path.name)
                except RadiolensError as exc:
                    logger.warning("study %s: no heatmap Secondary Capture: %s", study_uid, exc)

    src = datasets[0]

    def text(keyword: str) -> str:
        value = src.get(keyword, "")
        return "" if value is None else str(value)

    result = StudyResult(
        study_instance_uid=study_uid, patient_id=text("PatientID") or "UNKNOWN",
        patient_name=text("PatientName"), patient_sex=text("PatientSex"),
        patient_birth_date=text("PatientBirthDate"), accession_number=text("AccessionNumber"),
        study_date=text("StudyDate"), study_description=text("StudyDescription"),
        model_name=model_name, model_version=__version__,
        findings=tuple(FindingScore(n, findings[n], float(policy.thresholds.get(n, 0.5)),
                                    n in flags, policy.urgency.get(n, 1)) for n in labels),
        priority=priority, scored_at=dt.datetime.now(dt.UTC))
    draft = draft_report(result)
    _write(out_dir / "draft.txt", draft.full_text.encode("utf-8"))
    # The scores and the draft text are the triage result; a structured output that cannot
    # be built (odd header values) is logged and left out rather than losing the study.
    outputs: dict[str, str | None] = {"sr": None, "fhir": None, "hl7": None}
    try:
        make_sr(result, datasets, draft).save_as(out_dir / "sr.dcm", enforce_file_format=True)
        outputs["sr"] = str(rel_dir / "sr.dcm")
    except RadiolensError as exc:
        logger.error("study %s: no DICOM SR: %s", study_uid, exc)
    try:
        bundle = make_fhir_bundle(result, draft)
        _write(out_dir / "fhir.json", json.dumps(bundle, indent=2).encode("utf-8"))
        outputs["fhir"] = str(rel_dir / "fhir.json")
    except RadiolensError as exc:
        logger.error("study %s: no FHIR bundle: %s", study_uid, exc)
    try:
        _write(out_dir / "oru.hl7", make_oru(result, draft).encode("utf-8"))
        outputs["hl7"] = str(rel_dir / "oru.hl7")
    except RadiolensError as exc:
        logger.error("study %s: no HL7 ORU: %s", study_uid, exc)
    return ScoredStudy(findings=findings, flags=flags,
                       thresholds={n: float(policy.thresholds.get(n, 0.5)) for n in labels},
                       priority=priority, heatmap_paths=heatmap_paths,
                       draft_text=draft.full_text, sr_path=outputs["sr"],
                       fhir_path=outputs["fhir"], hl7_path=outputs["hl7"],
                       heatmap_sc_paths=heatmap_sc_paths)
