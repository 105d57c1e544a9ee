"""Worklist rows to API answers, and the lookups every route shares (404s, safe paths)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from radiolens.serve.context import ServeContext
from radiolens.serve.schemas import (
    DeliveryOut,
    InstanceOut,
    LungQualityOut,
    ResultOut,
    ReviewOut,
    StudyDetailOut,
    StudyLinks,
    StudyOut,
)
from radiolens.worklist import Delivery, Result, Review, Study
from radiolens.worklist.queries import StudyDetail, study_detail

__all__ = ["detail_out", "file_under", "heatmap_index", "result_out", "review_out",
           "study_detail_or_404", "study_out"]

logger = logging.getLogger(__name__)


def _links(study: Study) -> StudyLinks:
    base = f"/api/studies/{study.study_instance_uid}"
    if study.scored_at is None:
        return StudyLinks(self=base)
    segmented = bool(study.lungs)
    return StudyLinks(self=base, draft=f"{base}/draft", fhir=f"{base}/fhir", sr=f"{base}/sr",
                      heatmap=f"{base}/heatmap.png",
                      lungs=f"{base}/lungs.png" if segmented else None,
                      seg=f"{base}/seg.dcm" if segmented else None)


def _lung_fields(study: Study) -> dict[str, Any]:
    """The lung check of a study's latest result, as :class:`StudyOut` fields."""
    lungs = study.lungs if isinstance(study.lungs, dict) else {}
    quality = lungs.get("quality")
    heat = lungs.get("heat_in_lungs")
    return {
        "image_check": study.image_check,
        "lung_quality": LungQualityOut(
            ok=bool(quality.get("ok")), reasons=[str(r) for r in quality.get("reasons") or []],
            lung_fraction=float(quality.get("lung_fraction") or 0.0))
        if isinstance(quality, dict) else None,
        "lung_instance": str(lungs["sop_instance_uid"]) if lungs.get("sop_instance_uid")
        else None,
        "heat_in_lungs": {str(k): float(v) for k, v in heat.items()
                          if isinstance(v, int | float)} if isinstance(heat, dict) else {},
        "attention_warning": str(lungs["attention_warning"]) if lungs.get("attention_warning")
        else None,
    }


def _age(birth: dt.date | None, on: dt.date | None) -> str | None:
    """DICOM-style age (``045Y``, ``018M``) on the study date, or None."""
    if birth is None or on is None or on < birth:
        return None
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    if years >= 2:
        return f"{min(years, 999):03d}Y"
    months = (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)
    return f"{max(months, 0):03d}M"


def study_out(study: Study) -> StudyOut:
    patient = study.patient
    on = study.study_date or study.received_at.date()
    return StudyOut(
        study_instance_uid=study.study_instance_uid, status=study.status,
        priority=study.priority, priority_set_by=study.priority_set_by,
        flags=[str(f) for f in study.flags or []],
        findings={str(k): float(v) for k, v in (study.findings or {}).items()},
        received_at=study.received_at, scored_at=study.scored_at,
        patient_id=patient.patient_id if patient else None,
        patient_name=patient.name if patient else None,
        patient_sex=patient.sex if patient else None,
        patient_age=_age(patient.birth_date if patient else None, on),
        accession_number=study.accession_number, modality=study.modality,
        description=study.description, error=study.error, model_name=study.model_name,
        model_version=study.model_version, reviewed_by=study.reviewed_by,
        reviewed_at=study.reviewed_at, links=_links(study),
        outputs_pending=[str(n) for n in study.outputs_pending or []], **_lung_fields(study))


def heatmap_index(data_dir: Path, uid: str) -> dict[str, dict[str, str]]:
    """``results/<uid>/heatmaps.json`` written by the worker: finding -> map and instance."""
    path = data_dir / "results" / uid / "heatmaps.json"
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.items()
            if isinstance(v, dict)}


def result_out(ctx: ServeContext, uid: str, result: Result, latest: bool) -> ResultOut:
    base = f"/api/studies/{uid}/heatmap.png?finding="
    index = heatmap_index(ctx.data_dir, uid) if latest else {}
    return ResultOut(
        id=result.id, model=result.model, model_version=result.model_version,
        findings={str(k): float(v) for k, v in result.findings.items()},
        flags=[str(f) for f in result.flags],
        thresholds={str(k): float(v) for k, v in result.thresholds.items()},
        priority=result.priority,
        heatmaps={str(k): base + quote(str(k)) for k in result.heatmap_paths},
        heatmap_maps={k: base + quote(k) + "&kind=map" for k, v in index.items() if "map" in v},
        heatmap_instances={k: v["sop_instance_uid"] for k, v in index.items()
                           if v.get("sop_instance_uid")},
        has_draft=bool(result.draft_text), has_sr=bool(result.sr_path),
        created_at=result.created_at)


def review_out(uid: str, r: Review) -> ReviewOut:
    return ReviewOut(id=r.id, study_instance_uid=uid, reviewer=r.reviewer, action=r.action,
                     text=r.text, priority=r.priority, created_at=r.created_at,
                     version=r.version, result_id=r.result_fk, calls=r.calls or None,
                     boxes=r.boxes or None)


def deliveries_out(engine: Engine, deliveries: list[Delivery]) -> list[DeliveryOut]:
    fks = {d.study_fk for d in deliveries}
    uids: dict[int, str] = {}
    if fks:
        with Session(engine) as session:
            rows = session.execute(
                select(Study.id, Study.study_instance_uid).where(Study.id.in_(fks)))
            uids = {int(fk): str(uid) for fk, uid in rows}
    return [DeliveryOut(
        id=d.id, study_instance_uid=uids.get(d.study_fk), kind=d.kind,
        destination=d.destination, payload_path=d.payload_path, status=d.status,
        attempts=d.attempts, next_attempt_at=d.next_attempt_at, last_error=d.last_error,
        updated_at=d.updated_at) for d in deliveries]


def detail_out(ctx: ServeContext, d: StudyDetail) -> StudyDetailOut:
    uid = d.study.study_instance_uid
    return StudyDetailOut(
        **study_out(d.study).model_dump(),
        instances=[InstanceOut(sop_instance_uid=i.sop_instance_uid,
                               series_instance_uid=i.series_instance_uid,
                               sop_class_uid=i.sop_class_uid, received_at=i.received_at,
                               size_bytes=i.size_bytes) for i in d.instances],
        results=[result_out(ctx, uid, r, latest=i == 0) for i, r in enumerate(d.results)],
        reviews=[review_out(uid, r) for r in d.reviews],
        deliveries=deliveries_out(ctx.engine, d.deliveries))


def study_detail_or_404(ctx: ServeContext, uid: str) -> StudyDetail:
    found = study_detail(ctx.engine, uid)
    if found is None:
        raise HTTPException(404, f"no study with Study Instance UID {uid!r} on the worklist; "
                                 "list the studies with GET /api/studies")
    return found


def latest_result_or_404(d: StudyDetail) -> Result:
    if not d.results:
        raise HTTPException(
            404, f"study {d.study.study_instance_uid} is not scored yet (status "
                 f"{d.study.status}); its draft, SR, FHIR bundle and heatmaps appear once "
                 "the worker has scored it")
    return d.results[0]


def file_under(ctx: ServeContext, relative: str | Path | None, what: str) -> Path:
    """Resolve a data-dir-relative path; 404 when missing or outside the data directory."""
    if not relative:
        raise HTTPException(404, f"no {what} for this study")
    root = ctx.data_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        logger.warning("refused %s path: it lies outside the data directory", what)
        raise HTTPException(404, f"the {what} path is outside the data directory; refused")
    if not path.is_file():
        raise HTTPException(404, f"the {what} file is missing")
    return path


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO strings (for server-sent events)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
