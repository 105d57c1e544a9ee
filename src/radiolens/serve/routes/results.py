"""A study's outputs: the report (AI draft, or the signed final), SR, FHIR, heatmaps,
and the lung segmentation (mask PNG, its overlay on the radiograph, DICOM SEG).

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


#: Why a scored study may have no lung outputs.
_NO_LUNGS = ("the lung segmentation is off (radiolens serve --lung-model none), its model "
             "is not installed, or this output could not be made (see the study's error)")


def _lung_file(ctx: ServeContext, d: StudyDetail, name: str, what: str) -> Path:
    """A lung output of the study's latest result; 404 saying why when there is none."""
    latest_result_or_404(d)
    uid = d.study.study_instance_uid
    try:
        return file_under(ctx, Path("results") / uid / name, what)
    except HTTPException:
        raise HTTPException(404, f"study {uid} has no {what}: {_NO_LUNGS}") from None


def _overlay_png(ctx: ServeContext, d: StudyDetail, mask_path: Path) -> bytes:
    """The lung mask drawn on the radiograph it was made from, as PNG."""
    from io import BytesIO

    import numpy as np
    from PIL import Image

    from radiolens.errors import ImageReadError
    from radiolens.imaging import read_image
    from radiolens.segment.overlay import overlay_mask

    uid = d.study.study_instance_uid
    sop = str((d.study.lungs or {}).get("sop_instance_uid") or "")
    instance = next((i for i in d.instances if i.sop_instance_uid == sop), None)
    if instance is None:
        raise HTTPException(404, f"study {uid}: the image its lung mask was made on is no "
                                 "longer stored; fetch the mask alone (kind=mask)")
    try:
        pixels = read_image(file_under(ctx, instance.path, "image")).pixels
    except ImageReadError as exc:
        raise HTTPException(404, f"study {uid}: its image cannot be read ({exc})") from None
    with Image.open(mask_path) as img:
        mask = np.asarray(img.convert("L")) > 127
    if mask.shape != pixels.shape:
        raise HTTPException(404, f"study {uid}: the lung mask ({mask.shape[0]}x{mask.shape[1]}) "
                                 f"does not fit its image ({pixels.shape[0]}x{pixels.shape[1]}); "
                                 "it is rebuilt when the study is scored again")
    buffer = BytesIO()
    Image.fromarray(overlay_mask(pixels, mask)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@router.get("/lungs.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def lungs(
    ctx: Ctx,
    uid: str,
    kind: Annotated[Literal["mask", "overlay"], Query(
        description="mask: 8-bit lung mask (0 / 255) at the image's size; overlay: the "
                    "mask drawn on the radiograph (RGB)")] = "mask",
) -> Response:
    """The lung mask of the image the study is shown on."""
    d = study_detail_or_404(ctx, uid)
    path = _lung_file(ctx, d, "lung_mask.png", "lung mask")
    if kind == "mask":
        return FileResponse(path, media_type="image/png")
    return Response(_overlay_png(ctx, d, path), media_type="image/png")


@router.get("/seg.dcm", response_class=FileResponse,
            responses={200: {"content": {"application/dicom": {}}}})
def seg(ctx: Ctx, uid: str) -> FileResponse:
    """The lung mask as a DICOM Segmentation (BINARY, one "Lung" segment), as sent to the
    PACS with the SR."""
    d = study_detail_or_404(ctx, uid)
    path = _lung_file(ctx, d, "lung_seg.dcm", "lung Segmentation")
    return FileResponse(path, media_type="application/dicom",
                        filename=f"{d.study.study_instance_uid}_lung_seg.dcm")
