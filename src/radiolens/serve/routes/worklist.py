"""The worklist: pages of studies, one study whole, and a stream of changes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from radiolens import DISCLAIMER, __version__
from radiolens.serve.context import Auth, Ctx, User
from radiolens.serve.schemas import InfoOut, StudyDetailOut, StudyOut
from radiolens.serve.views import detail_out, study_detail_or_404, study_out
from radiolens.worklist import STUDY_STATUSES, list_studies
from radiolens.worklist.queries import VIEWS, changed_studies, study_page

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["worklist"])

#: How often the event stream looks for changes, and how long one stream lives.
EVENT_POLL_S = 1.0
EVENT_STREAM_S = 300.0
#: Priority from which a new study raises an "urgent" alert.
URGENT_PRIORITY = 80


@router.get("/info", response_model=InfoOut, dependencies=Auth, tags=["service"])
def info(ctx: Ctx) -> InfoOut:
    """What the web UI shows in its header: model, AE title and DICOM port."""
    return InfoOut(version=__version__, disclaimer=DISCLAIMER, model_name=ctx.model_name,
                   ae_title=ctx.ae_title, dicom_port=ctx.dicom_port)


@router.get("/studies", response_model=list[StudyOut])
def studies(
    ctx: Ctx,
    user: User,
    response: Response,
    view: Annotated[str, Query(description=f"one of {', '.join(VIEWS)}")] = "all",
    q: Annotated[str | None, Query(max_length=200, description="search text")] = None,
    status: Annotated[str | None, Query(
        description=f"one status or several, comma-separated: {', '.join(STUDY_STATUSES)}"
    )] = None,
    order: Annotated[str, Query(description="priority (default) or oldest")] = "priority",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[StudyOut]:
    """The worklist: highest priority first, then the longest waiting (``order=oldest``
    for the annotation queue). ``X-Total-Count`` gives the number the view holds."""
    if status:
        wanted = [s.strip() for s in status.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in STUDY_STATUSES]
        if unknown:
            raise HTTPException(400, f"unknown status {unknown}; use one of "
                                     f"{', '.join(STUDY_STATUSES)}")
        found = list_studies(ctx.engine, wanted, limit=limit, offset=offset)
        response.headers["X-Total-Count"] = str(len(found) + offset)
        return [study_out(s) for s in found]
    try:
        page = study_page(ctx.engine, view=view, query=q, user=user.name, order=order,
                          limit=limit, offset=offset)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    response.headers["X-Total-Count"] = str(page.total)
    return [study_out(s) for s in page.studies]


@router.get("/studies/{uid}", response_model=StudyDetailOut, dependencies=Auth)
def study(ctx: Ctx, uid: str) -> StudyDetailOut:
    """One study with its instances, results (latest first), reviews and deliveries."""
    return detail_out(ctx, study_detail_or_404(ctx, uid))


def _resume_from(request: Request) -> dt.datetime:
    """Where a stream starts: the ``Last-Event-ID`` a reconnecting browser sends (the
    time of the last event it saw, at most an hour back), else now."""
    now = dt.datetime.now(dt.UTC)
    try:
        last = dt.datetime.fromisoformat(request.headers.get("last-event-id", ""))
    except ValueError:
        return now
    if last.tzinfo is None:
        return now
    return min(now, max(last, now - dt.timedelta(hours=1)))


async def _events(request: Request, ctx: Ctx) -> AsyncIterator[str]:
    since = _resume_from(request)
    started = asyncio.get_running_loop().time()
    yield "retry: 3000\n\n"
    while asyncio.get_running_loop().time() - started < EVENT_STREAM_S:
        if await request.is_disconnected():
            return
        await asyncio.sleep(EVENT_POLL_S)
        now = dt.datetime.now(dt.UTC)
        try:
            changed = await asyncio.to_thread(changed_studies, ctx.engine, since)
        except Exception as exc:  # the database is down: say so, keep the stream
            logger.warning("event stream: %s", type(exc).__name__)
            yield ": worklist unavailable\n\n"
            continue
        prev, since = since, now
        if changed:
            urgent = [s.study_instance_uid for s in changed  # newly scored as urgent
                      if s.status == "scored" and s.priority >= URGENT_PRIORITY
                      and s.scored_at is not None and s.scored_at > prev]
            data = {"changed": [s.study_instance_uid for s in changed], "urgent": urgent}
            yield f"id: {now.isoformat()}\nevent: studies\ndata: {json.dumps(data)}\n\n"
        else:
            yield ": keep-alive\n\n"


@router.get("/events", dependencies=Auth, response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
def events(request: Request, ctx: Ctx) -> StreamingResponse:
    """Server-sent events: ``studies`` with the UIDs that changed and the urgent ones."""
    return StreamingResponse(_events(request, ctx), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
