"""Uploads, deliveries back to the PACS and RIS, and re-queueing failed studies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from radiolens import DISCLAIMER
from radiolens.serve.context import Admin, Auth, Ctx
from radiolens.serve.schemas import DeliveryOut, UploadItem, UploadOut
from radiolens.serve.upload import ingest_upload
from radiolens.serve.views import deliveries_out, study_detail_or_404
from radiolens.worklist import DELIVERY_STATUSES, list_deliveries

__all__ = ["RequeueIn", "RequeueOut", "router"]

router = APIRouter(prefix="/api")


class RequeueIn(BaseModel):
    """Which failed studies to re-queue: one, or (no UID) every failed study."""

    model_config = ConfigDict(extra="forbid")

    study_instance_uid: str | None = None


class RequeueOut(BaseModel):
    """The studies given a new scoring job."""

    requeued: list[str]


@router.post("/admin/requeue", response_model=RequeueOut, dependencies=Admin, tags=["admin"])
def requeue(ctx: Ctx, body: RequeueIn) -> RequeueOut:
    """Give failed studies a new scoring job (after fixing what made them fail)."""
    from radiolens.worklist import requeue_failed

    uid = body.study_instance_uid
    if uid is not None:
        study_detail_or_404(ctx, uid)
    return RequeueOut(requeued=requeue_failed(ctx.engine, uid))


@router.get("/deliveries", response_model=list[DeliveryOut], dependencies=Auth,
            tags=["deliveries"])
def deliveries(
    ctx: Ctx,
    status: Annotated[str | None, Query(description=f"one of {', '.join(DELIVERY_STATUSES)}")
                      ] = None,
    uid: Annotated[str | None, Query(description="only this study's")] = None,
) -> list[DeliveryOut]:
    """Results sent back to a PACS or RIS: pending, sent, or failed (with the error)."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise HTTPException(400, f"unknown status {status!r}; use one of "
                                 f"{', '.join(DELIVERY_STATUSES)}")
    if uid is not None:
        study_detail_or_404(ctx, uid)
    return deliveries_out(ctx.engine, list_deliveries(ctx.engine, status, uid))


@router.post("/upload", response_model=UploadOut, dependencies=Auth, tags=["upload"],
             responses={413: {"description": "a file is too large"},
                        422: {"description": "every file was refused"}})
def upload(
    ctx: Ctx,
    files: Annotated[list[UploadFile], File(description="DICOM, PNG or JPEG files")],
    patient_id: Annotated[str, Form(description="Patient ID for PNG/JPEG")] = "",
    patient_name: Annotated[str, Form(description="Patient's Name, Family^Given")] = "",
) -> JSONResponse:
    """Store radiographs as if a PACS had sent them; PNG/JPEG become Secondary Captures.

    The multipart field is ``files`` (repeat it for several). Answers 200 when any file
    was stored (or was already), 422 when all were refused.
    """
    if len(files) > ctx.max_upload_files:
        raise HTTPException(413, f"{len(files)} files in one upload; at most "
                                 f"{ctx.max_upload_files}")
    too_big = HTTPException(413, f"a file is larger than the {ctx.max_upload_bytes} bytes "
                                 "allowed per file")
    if any(f.size is not None and f.size > ctx.max_upload_bytes for f in files):
        raise too_big
    items: list[UploadItem] = []
    for f in files:
        data = f.file.read(ctx.max_upload_bytes + 1)
        if len(data) > ctx.max_upload_bytes:
            raise too_big
        items.append(ingest_upload(
            ctx.data_dir, ctx.engine, f.filename or "(unnamed)", data,
            patient_id=patient_id.strip(), patient_name=patient_name.strip(),
            max_pixels=ctx.max_image_pixels))
    out = UploadOut(files=items, disclaimer=DISCLAIMER)
    refused = all(i.status == "refused" for i in items)
    return JSONResponse(out.model_dump(mode="json"), status_code=422 if refused else 200)
