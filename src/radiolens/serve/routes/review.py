"""Signed reads, a person's priority, and the model's agreement with the reviewers."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from radiolens.serve.context import Ctx, User
from radiolens.serve.schemas import (
    AgreementOut,
    AgreementRow,
    PriorityIn,
    ReviewIn,
    ReviewOut,
    StudyOut,
)
from radiolens.serve.signing import write_signed_outputs
from radiolens.serve.views import review_out, study_detail_or_404, study_out
from radiolens.worklist import add_review
from radiolens.worklist.feedback import agreement, drift_warning
from radiolens.worklist.reviews import sign_review

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["review"])


@router.post("/studies/{uid}/review", response_model=ReviewOut,
             responses={409: {"description": "re-scored since result_id, or signed already"}})
def review(ctx: Ctx, user: User, uid: str, body: ReviewIn) -> ReviewOut:
    """Sign the read of a study (or amend it): a call per finding and the report text.

    The reviewer is the signed-in user. The study becomes ``reviewed``: it leaves the
    unread list, and its report, SR (VERIFIED) and FHIR report (final) are the signed
    ones.
    """
    detail = study_detail_or_404(ctx, uid)
    uid = detail.study.study_instance_uid
    try:
        signed = sign_review(ctx.engine, uid, reviewer=user.name, result_id=body.result_id,
                             findings=body.calls, text=body.text,
                             boxes=[b.model_dump() for b in body.boxes], amend=body.amend)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    logger.info("%s signed study %s (version %s)", user.name, uid, signed.version)
    out = review_out(uid, signed)
    result = next((r for r in detail.results if r.id == body.result_id), None)
    out.warnings = write_signed_outputs(ctx, study_detail_or_404(ctx, uid), result, signed)
    return out


@router.post("/studies/{uid}/priority", response_model=StudyOut)
def priority(ctx: Ctx, user: User, uid: str, body: PriorityIn) -> StudyOut:
    """Set a person's priority (recorded as a 'reprioritise' review by the signed-in user;
    never lowered by a later model result)."""
    uid = study_detail_or_404(ctx, uid).study.study_instance_uid
    add_review(ctx.engine, uid, reviewer=user.name, action="reprioritise",
               priority=body.priority)
    logger.info("%s set the priority of %s to %d", user.name, uid, body.priority)
    return study_out(study_detail_or_404(ctx, uid).study)


@router.get("/agreement", response_model=AgreementOut)
def agreement_page(
    ctx: Ctx,
    _user: User,
    last: Annotated[int, Query(ge=1, le=100_000, description="the last N signed reads")] = 200,
) -> AgreementOut:
    """Per finding, the model's sensitivity and specificity against the reviewers' calls
    (Wilson 95 % intervals), beside the model card's validation figures; a warning when
    the model card lies above the interval (drift)."""
    rows = agreement(ctx.engine, last_n=last, card=ctx.card_figures)
    return AgreementOut(last_n=last, reviews=max((r.n for r in rows), default=0),
                        findings=[AgreementRow(**r.to_dict()) for r in rows],
                        warning=drift_warning(rows, last))
