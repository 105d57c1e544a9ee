"""What signing a read produces: the final report, a verified SR and a final FHIR report.

Each version goes to ``results/<study>/signed/v<N>/`` (``report.txt``, ``sr.dcm``,
``fhir.json``), so every earlier version stays on disk beside the audit trail in the
worklist; an amended SR names its predecessor. The signed SR is queued for the PACS when
the service forwards results (``--forward-to``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pydicom

from radiolens._fs import write_atomic
from radiolens.drafts.model import SignedRead, result_from_header
from radiolens.errors import RadiolensError
from radiolens.serve.context import ServeContext
from radiolens.worklist import Result, Review, queue_delivery
from radiolens.worklist.queries import StudyDetail

__all__ = ["signed_dir", "write_signed_outputs"]

logger = logging.getLogger(__name__)


def signed_dir(uid: str, version: int) -> Path:
    """Where version ``version`` of a study's signed read lives, relative to the data dir."""
    return Path("results") / uid / "signed" / f"v{version}"


def _sources(ctx: ServeContext, detail: StudyDetail) -> list[pydicom.Dataset]:
    out: list[pydicom.Dataset] = []
    for inst in detail.instances:
        try:
            out.append(pydicom.dcmread(ctx.data_dir / inst.path, stop_before_pixels=True))
        except Exception as exc:  # an unreadable file is reported by the worker already
            logger.warning("study %s: instance not readable for the signed SR: %s",
                           detail.study.study_instance_uid, type(exc).__name__)
    return out


def write_signed_outputs(ctx: ServeContext, detail: StudyDetail, result: Result | None,
                         review: Review) -> list[str]:
    """Write the signed read's report, SR and FHIR bundle; the problems, if any.

    The review is recorded before this runs: a failure here never unsigns it, it is
    returned (and logged) so the reviewer sees that an output is missing. A study closed
    without an AI result (the image needed checking) keeps its report text only.
    """
    from radiolens.drafts import make_fhir_bundle, make_sr
    from radiolens.drafts.text import draft_report

    uid = detail.study.study_instance_uid
    version = review.version or 1
    rel = signed_dir(uid, version)
    out = ctx.data_dir / rel
    out.mkdir(parents=True, exist_ok=True)
    text = review.text or ""
    write_atomic(out / "report.txt", text.encode("utf-8"))
    read = SignedRead(reviewer=review.reviewer, signed_at=review.created_at, text=text,
                      calls=dict(review.calls or {}), version=version)
    problems: list[str] = []
    if result is None:
        return problems  # no AI scores: no SR or FHIR report of them to sign
    sources = _sources(ctx, detail)
    if not sources:
        return ["no readable source image: the signed SR and FHIR report were not made"]
    try:
        study_result = result_from_header(
            sources[0], study_uid=uid, model_name=result.model,
            model_version=result.model_version or "unknown",
            findings={str(k): float(v) for k, v in result.findings.items()},
            thresholds={str(k): float(v) for k, v in result.thresholds.items()},
            flags=[str(f) for f in result.flags], priority=result.priority,
            scored_at=result.created_at)
        previous = []
        if version > 1:
            prior = ctx.data_dir / signed_dir(uid, version - 1) / "sr.dcm"
            if prior.is_file():
                previous.append(pydicom.dcmread(prior))
        sr = make_sr(study_result, sources, read=read, previous=previous,
                     organization=ctx.organization)
        from io import BytesIO

        buffer = BytesIO()
        sr.save_as(buffer, enforce_file_format=True)
        write_atomic(out / "sr.dcm", buffer.getvalue())
        bundle = make_fhir_bundle(study_result, draft_report(study_result), read=read)
        write_atomic(out / "fhir.json", json.dumps(bundle, indent=2).encode("utf-8"))
    except RadiolensError as exc:
        logger.error("study %s: signed outputs not made: %s", uid, exc)
        problems.append(f"signed SR/FHIR not made: {exc}")
        return problems
    if ctx.forward_to:
        queue_delivery(ctx.engine, uid, "dicom-sr", ctx.forward_to,
                       payload_path=str(rel / "sr.dcm"))
    logger.info("study %s: signed read version %d written", uid, version)
    return problems
