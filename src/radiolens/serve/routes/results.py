"""A study's outputs: the report (AI draft, or the signed final), SR, FHIR, heatmaps.

Once a read is signed, ``/draft``, ``/sr`` and ``/fhir`` give the signed version in force
(final, verified); before that the preliminary AI draft.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response

from radiolens import DISCLAIMER
from radiolens.serve.context import Auth, Ctx, ServeContext
from radiolens.serve.schemas import DraftOut
from radiolens.serve.signing import signed_dir
from radiolens.serve.views import (
    file_under,
    heatmap_index,
    latest_result_or_404,
    study_detail_or_404,
)
from radiolens.worklist import Review
from radiolens.worklist.queries import StudyDetail
from radiolens.worklist.reviews import SIGNING_ACTIONS

__all__ = ["router"]

router = APIRouter(prefix="/api/studies/{uid}", tags=["results"], dependencies=Auth)


def _signed(d: StudyDetail) -> Review | None:
    """The signed read in force, when the study is reviewed."""
    if d.study.status != "reviewed":
        return None
    signed = [r for r in d.reviews if r.action in SIGNING_ACTIONS]
    return signed[-1] if signed else None


def _signed_file(ctx: ServeContext, d: StudyDetail, name: str) -> Path | None:
    review = _signed(d)
    if review is None:
        return None
    return file_under(ctx, signed_dir(d.study.study_instance_uid, review.version or 1) / name,
                      f"signed {name}")


@router.get("/draft", response_model=DraftOut)
def draft(ctx: Ctx, uid: str) -> DraftOut:
    """The report: the signed final once reviewed, else the preliminary AI draft."""
    d = study_detail_or_404(ctx, uid)
    review = _signed(d)
    if review is not None:
        return DraftOut(study_instance_uid=d.study.study_instance_uid, text=review.text or "",
                        disclaimer=DISCLAIMER, final=True,
                        status="amended" if (review.version or 1) > 1 else "final",
                        signed_by=review.reviewer, signed_at=review.created_at,
                        version=review.version)
    result = latest_result_or_404(d)
    text = result.draft_text
    if not text:
        text = file_under(ctx, Path("results") / d.study.study_instance_uid / "draft.txt",
                          "draft").read_text(encoding="utf-8")
    return DraftOut(study_instance_uid=d.study.study_instance_uid, text=text,
                    disclaimer=DISCLAIMER)


@router.get("/fhir", response_class=Response,
            responses={200: {"content": {"application/fhir+json": {}}}})
def fhir(ctx: Ctx, uid: str) -> Response:
    """The FHIR R4 Bundle: final DiagnosticReport once signed, else preliminary."""
    d = study_detail_or_404(ctx, uid)
    latest_result_or_404(d)
    path = _signed_file(ctx, d, "fhir.json") or file_under(
        ctx, Path("results") / d.study.study_instance_uid / "fhir.json", "FHIR bundle")
    return Response(path.read_bytes(), media_type="application/fhir+json")


@router.get("/sr", response_class=FileResponse,
            responses={200: {"content": {"application/dicom": {}}}})
def sr(ctx: Ctx, uid: str) -> FileResponse:
    """The Comprehensive SR: VERIFIED and COMPLETE once signed, else the AI draft."""
    d = study_detail_or_404(ctx, uid)
    result = latest_result_or_404(d)
    path = _signed_file(ctx, d, "sr.dcm") or file_under(ctx, result.sr_path, "DICOM SR")
    return FileResponse(path, media_type="application/dicom",
                        filename=f"{d.study.study_instance_uid}_sr.dcm")


@router.get("/heatmap.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {}}}})
def heatmap(
    ctx: Ctx,
    uid: str,
    finding: Annotated[str | None, Query(
        description="the finding; default the first flagged one, else the first")] = None,
    kind: Annotated[Literal["overlay", "map"], Query(
        description="overlay: RGB blend on the radiograph; map: 8-bit importance map")
    ] = "overlay",
) -> FileResponse:
    """A Grad-CAM heatmap of one finding."""
    d = study_detail_or_404(ctx, uid)
    result = latest_result_or_404(d)
    paths = {str(k): str(v) for k, v in result.heatmap_paths.items()}
    if kind == "map":
        paths = {k: v["map"] for k, v in heatmap_index(ctx.data_dir, uid).items() if "map" in v}
    if not paths:
        raise HTTPException(404, f"no heatmaps were made for study {uid}")
    if finding is None:
        flagged = [str(f) for f in result.flags if str(f) in paths]
        finding = flagged[0] if flagged else next(iter(paths))
    if finding not in paths:
        raise HTTPException(404, f"no heatmap for finding {finding!r}; available: "
                                 f"{', '.join(paths)}")
    return FileResponse(file_under(ctx, paths[finding], "heatmap"), media_type="image/png")
