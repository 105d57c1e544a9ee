"""The FastAPI application: the triage worklist API and the web UI.

Everything under ``/api`` needs ``Authorization: Bearer <token>``; ``/health``, the web
UI (``/``) and the OpenAPI docs (``/docs``) do not. Errors are translated to HTTP once,
in :func:`_on_radiolens_error`. The app keeps no global state: its settings live on
``app.state.ctx`` (a :class:`ServeContext`).

Example:
    >>> app = create_app(Path("data"), open_worklist("data/wl.db"), "s3cret")  # doctest: +SKIP
    >>> uvicorn.run(app, port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, cast

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from radiolens import DISCLAIMER, __version__
from radiolens.errors import (
    ConfigError,
    InstanceRefused,
    MissingDependencyError,
    RadiolensError,
    WorklistError,
)
from radiolens.imaging.checks import DEFAULT_MAX_PIXELS
from radiolens.serve.dicomweb import dicomweb_router
from radiolens.serve.schemas import (
    DeliveryOut,
    DraftOut,
    HealthOut,
    InfoOut,
    InstanceOut,
    PriorityIn,
    ResultOut,
    ReviewIn,
    ReviewOut,
    StudyDetailOut,
    StudyLinks,
    StudyOut,
    UploadItem,
    UploadOut,
)
from radiolens.serve.upload import UploadSizeLimit, ingest_upload
from radiolens.worklist import (
    DELIVERY_STATUSES,
    STUDY_STATUSES,
    Delivery,
    Result,
    Study,
    add_review,
    count_studies,
    get_study,
    list_deliveries,
    list_instances,
    list_results,
    list_reviews,
    list_studies,
)

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "DEFAULT_MAX_UPLOAD_FILES",
    "UI_DISCLAIMER",
    "ServeContext",
    "create_app",
]

logger = logging.getLogger(__name__)

#: Largest accepted upload, per file.
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
#: Most files accepted in one upload request.
DEFAULT_MAX_UPLOAD_FILES = 20
#: The banner the web UI shows above every draft.
UI_DISCLAIMER = "AI draft — for radiologist review; not a diagnosis"

STATIC_DIR = Path(__file__).parent / "static"

_UI_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


#: Headers on every response: no MIME sniffing, no framing, no referrer, no powerful APIs.
_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
#: API answers are data, never documents: nothing in them may load or run.
_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


class RequeueIn(BaseModel):
    """Which failed studies to re-queue: one, or (no UID) every failed study."""

    model_config = ConfigDict(extra="forbid")

    study_instance_uid: str | None = None


class RequeueOut(BaseModel):
    """The studies given a new scoring job."""

    requeued: list[str]


@dataclass(frozen=True)
class ServeContext:
    """What the routes need, stored on ``app.state.ctx`` by :func:`create_app`."""

    data_dir: Path
    engine: Engine
    api_token: str
    model_name: str
    ae_title: str
    dicom_port: int | None
    max_upload_bytes: int
    max_upload_files: int
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    #: extra reasons the service is degraded (e.g. "worker restarting"), from the supervisor
    health_reasons: Callable[[], list[str]] | None = None


def _ctx(request: Request) -> ServeContext:
    return cast(ServeContext, request.app.state.ctx)


def _token_ok(authorization: str | None, token: str) -> bool:
    """True when an ``Authorization`` header carries the API token as a Bearer token."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8")
    )


_bearer = HTTPBearer(
    auto_error=False,
    description="The API token: printed by `radiolens serve`, kept in DATA_DIR/api_token.",
)


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Dependency: answer 401 unless the request carries the API token."""
    if credentials is None:
        raise HTTPException(
            401,
            "missing API token: send the header 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _token_ok(f"Bearer {credentials.credentials}", _ctx(request).api_token):
        raise HTTPException(
            401, "wrong API token", headers={'WWW-Authenticate': 'Bearer error="invalid_token"'}
        )


Ctx = Annotated[ServeContext, Depends(_ctx)]
Auth = [Depends(require_token)]


# -- conversions ---------------------------------------------------------------------


def _links(study: Study) -> StudyLinks:
    base = f"/api/studies/{study.study_instance_uid}"
    if study.scored_at is None:
        return StudyLinks(self=base)
    return StudyLinks(
        self=base, draft=f"{base}/draft", fhir=f"{base}/fhir", sr=f"{base}/sr",
        heatmap=f"{base}/heatmap.png",
    )


def _study_out(study: Study) -> StudyOut:
    patient = study.patient
    return StudyOut(
        study_instance_uid=study.study_instance_uid,
        status=study.status,
        priority=study.priority,
        priority_set_by=study.priority_set_by,
        flags=[str(f) for f in study.flags or []],
        findings={str(k): float(v) for k, v in (study.findings or {}).items()},
        received_at=study.received_at,
        scored_at=study.scored_at,
        patient_id=patient.patient_id if patient else None,
        patient_name=patient.name if patient else None,
        accession_number=study.accession_number,
        modality=study.modality,
        description=study.description,
        error=study.error,
        model_name=study.model_name,
        model_version=study.model_version,
        links=_links(study),
    )


def _heatmap_url(uid: str, finding: str) -> str:
    from urllib.parse import quote

    return f"/api/studies/{uid}/heatmap.png?finding={quote(finding)}"


def _result_out(uid: str, result: Result) -> ResultOut:
    return ResultOut(
        id=result.id,
        model=result.model,
        model_version=result.model_version,
        findings={str(k): float(v) for k, v in result.findings.items()},
        flags=[str(f) for f in result.flags],
        thresholds={str(k): float(v) for k, v in result.thresholds.items()},
        priority=result.priority,
        heatmaps={str(k): _heatmap_url(uid, str(k)) for k in result.heatmap_paths},
        has_draft=bool(result.draft_text),
        has_sr=bool(result.sr_path),
        created_at=result.created_at,
    )


def _deliveries_out(engine: Engine, deliveries: list[Delivery]) -> list[DeliveryOut]:
    fks = {d.study_fk for d in deliveries}
    uids: dict[int, str] = {}
    if fks:
        with Session(engine) as session:
            rows = session.execute(
                select(Study.id, Study.study_instance_uid).where(Study.id.in_(fks))
            )
            uids = {int(fk): str(uid) for fk, uid in rows}
    return [
        DeliveryOut(
            id=d.id, study_instance_uid=uids.get(d.study_fk), kind=d.kind,
            destination=d.destination, payload_path=d.payload_path, status=d.status,
            attempts=d.attempts, next_attempt_at=d.next_attempt_at, last_error=d.last_error,
            updated_at=d.updated_at,
        )
        for d in deliveries
    ]


# -- lookups -------------------------------------------------------------------------


def _study_or_404(ctx: ServeContext, uid: str) -> Study:
    study = get_study(ctx.engine, uid)
    if study is None:
        raise HTTPException(
            404,
            f"no study with Study Instance UID {uid!r} on the worklist; list the studies "
            "with GET /api/studies",
        )
    return study


def _latest_result_or_404(ctx: ServeContext, study: Study) -> Result:
    results = list_results(ctx.engine, study.study_instance_uid)
    if not results:
        raise HTTPException(
            404,
            f"study {study.study_instance_uid} is not scored yet (status {study.status}); "
            "its draft, SR, FHIR bundle and heatmaps appear once the worker has scored it",
        )
    return results[0]


def _file_under(ctx: ServeContext, relative: str | Path | None, what: str) -> Path:
    """Resolve a data-dir-relative path; 404 when missing or outside the data directory."""
    if not relative:
        raise HTTPException(404, f"no {what} for this study")
    root = ctx.data_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        logger.warning("refused %s path %r: it lies outside the data directory", what, relative)
        raise HTTPException(404, f"the {what} path is outside the data directory; refused")
    if not path.is_file():
        raise HTTPException(404, f"the {what} file is missing ({relative})")
    return path


# -- error translation ---------------------------------------------------------------


def _status_for(exc: RadiolensError) -> int:
    if isinstance(exc, InstanceRefused):
        return 422
    if isinstance(exc, WorklistError):
        return 503
    if isinstance(exc, MissingDependencyError):
        return 501
    # ConfigError, InputFormatError, ImageReadError and the rest: the client's input
    return 400


async def _on_radiolens_error(request: Request, exc: Exception) -> JSONResponse:
    """Translate every :class:`RadiolensError` into a JSON error answer."""
    assert isinstance(exc, RadiolensError)
    status = _status_for(exc)
    body: dict[str, object] = {"detail": str(exc)}
    if isinstance(exc, InstanceRefused):
        body["reason"] = exc.reason
        body["dicom_status"] = f"0x{exc.status:04X}"
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    else:
        logger.info("%s %s -> %d: %s", request.method, request.url.path, status, exc)
    return JSONResponse(body, status_code=status)


# -- the app -------------------------------------------------------------------------


def create_app(
    data_dir: Path,
    engine: Engine,
    api_token: str,
    *,
    model_name: str = "",
    ae_title: str = "RADIOLENS",
    dicom_port: int | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_upload_files: int = DEFAULT_MAX_UPLOAD_FILES,
    max_image_pixels: int = DEFAULT_MAX_PIXELS,
    health_reasons: Callable[[], list[str]] | None = None,
) -> FastAPI:
    """Build the triage API and web UI over a worklist.

    Args:
        data_dir: the service's data directory (DICOM files and results live under it).
        engine: the worklist engine (:func:`radiolens.worklist.open_worklist`).
        api_token: the Bearer token every ``/api`` request must carry.
        model_name: the model the worker runs (shown in the UI).
        ae_title: the receiver's AE title (shown in the UI).
        dicom_port: the receiver's port (shown in the UI), if it runs.
        max_upload_bytes: largest accepted uploaded file (413 above).
        max_upload_files: most files in one upload request.
        max_image_pixels: images with more pixels are refused before decoding.
        health_reasons: returns why the service is degraded beyond the storage probes
            (the supervisor's "worker restarting"); shown on ``/health`` with the token.

    Returns:
        The FastAPI application (OpenAPI docs at ``/docs``).

    Raises:
        ConfigError: the token is empty.
    """
    if not api_token or not api_token.strip():
        raise ConfigError("the API token is empty; set RADIOLENS_API_TOKEN or let serve make one")
    app = FastAPI(
        title="radiolens triage API",
        version=__version__,
        description=(
            "Worklist of chest radiographs scored by a triage model, with preliminary AI "
            "drafts (text, DICOM SR, FHIR) and heatmaps. Every request under /api needs "
            "`Authorization: Bearer <token>`.\n\n" + DISCLAIMER
        ),
    )
    app.state.ctx = ServeContext(
        data_dir=Path(data_dir), engine=engine, api_token=api_token.strip(),
        model_name=model_name, ae_title=ae_title, dicom_port=dicom_port,
        max_upload_bytes=max_upload_bytes, max_upload_files=max_upload_files,
        max_image_pixels=max_image_pixels, health_reasons=health_reasons,
    )
    app.add_exception_handler(RadiolensError, _on_radiolens_error)
    app.add_middleware(UploadSizeLimit, max_bytes=max_upload_bytes * max_upload_files
                       + 1024 * 1024)
    app.middleware("http")(_guard_and_headers)
    _add_routes(app)
    app.include_router(dicomweb_router(Auth))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


async def _guard_and_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Refuse oversized or unauthenticated uploads before their body is read; add headers."""
    path = request.url.path
    if path == "/api/upload" and request.method == "POST":
        ctx = _ctx(request)
        if not _token_ok(request.headers.get("authorization"), ctx.api_token):
            return JSONResponse(
                {"detail": "missing or wrong API token"}, status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        # the body's size is capped as it streams in, by UploadSizeLimit (inside this)
    response = await call_next(request)
    for key, value in _COMMON_HEADERS.items():
        response.headers.setdefault(key, value)
    if path.startswith("/api/") or path == "/health":
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("Content-Security-Policy", _API_CSP)
    elif path == "/" or path.startswith("/static/"):
        for key, value in _UI_HEADERS.items():
            response.headers.setdefault(key, value)
    return response


def _add_routes(app: FastAPI) -> None:
    """Register the routes on ``app``."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health", response_model=HealthOut, response_model_exclude_none=True,
             tags=["service"])
    def health(ctx: Ctx, request: Request) -> HealthOut:
        """``ok`` or ``degraded`` (disk full, database read-only or unavailable, worker
        restarting), version and study counts; the reasons only with the API token."""
        from radiolens.worklist.health import storage_faults

        reasons = storage_faults(ctx.data_dir, ctx.engine)
        if ctx.health_reasons is not None:
            reasons += ctx.health_reasons()
        try:
            counts = count_studies(ctx.engine)
        except WorklistError:
            counts = {}
            if "database unavailable" not in reasons:
                reasons.append("database unavailable")
        authorized = _token_ok(request.headers.get("authorization"), ctx.api_token)
        return HealthOut(
            status="degraded" if reasons else "ok", version=__version__,
            disclaimer=DISCLAIMER, counts=counts,
            reasons=reasons if authorized else None,
        )

    @app.post("/api/admin/requeue", response_model=RequeueOut, dependencies=Auth,
              tags=["admin"])
    def requeue(ctx: Ctx, body: RequeueIn) -> RequeueOut:
        """Give failed studies a new scoring job (after fixing what made them fail)."""
        from radiolens.worklist import requeue_failed

        uid = body.study_instance_uid
        if uid is not None:
            _study_or_404(ctx, uid)
        return RequeueOut(requeued=requeue_failed(ctx.engine, uid))

    @app.get("/api/info", response_model=InfoOut, dependencies=Auth, tags=["service"])
    def info(ctx: Ctx) -> InfoOut:
        """What the web UI shows in its header: model, AE title and DICOM port."""
        return InfoOut(
            version=__version__, disclaimer=DISCLAIMER, model_name=ctx.model_name,
            ae_title=ctx.ae_title, dicom_port=ctx.dicom_port,
        )

    @app.get("/api/studies", response_model=list[StudyOut], dependencies=Auth,
             tags=["worklist"])
    def studies(
        ctx: Ctx,
        status: Annotated[str | None, Query(
            description=f"one status or several, comma-separated: {', '.join(STUDY_STATUSES)}"
        )] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[StudyOut]:
        """The worklist: highest priority first, then the longest waiting."""
        wanted = [s.strip() for s in (status or "").split(",") if s.strip()]
        unknown = [s for s in wanted if s not in STUDY_STATUSES]
        if unknown:
            raise HTTPException(
                400, f"unknown status {unknown}; use one of {', '.join(STUDY_STATUSES)}"
            )
        found = list_studies(ctx.engine, wanted or None, limit=limit, offset=offset)
        return [_study_out(s) for s in found]

    @app.get("/api/studies/{uid}", response_model=StudyDetailOut, dependencies=Auth,
             tags=["worklist"])
    def study_detail(ctx: Ctx, uid: str) -> StudyDetailOut:
        """One study with its instances, results (latest first), reviews and deliveries."""
        study = _study_or_404(ctx, uid)
        uid = study.study_instance_uid
        return StudyDetailOut(
            **_study_out(study).model_dump(),
            instances=[
                InstanceOut(
                    sop_instance_uid=i.sop_instance_uid,
                    series_instance_uid=i.series_instance_uid,
                    sop_class_uid=i.sop_class_uid, received_at=i.received_at,
                    size_bytes=i.size_bytes,
                )
                for i in list_instances(ctx.engine, uid)
            ],
            results=[_result_out(uid, r) for r in list_results(ctx.engine, uid)],
            reviews=[
                ReviewOut(id=r.id, reviewer=r.reviewer, action=r.action, text=r.text,
                          priority=r.priority, created_at=r.created_at)
                for r in list_reviews(ctx.engine, uid)
            ],
            deliveries=_deliveries_out(ctx.engine, list_deliveries(ctx.engine, uid=uid)),
        )

    @app.get("/api/studies/{uid}/draft", response_model=DraftOut, dependencies=Auth,
             tags=["results"])
    def draft(ctx: Ctx, uid: str) -> DraftOut:
        """The preliminary AI draft report (404 until the study is scored)."""
        study = _study_or_404(ctx, uid)
        result = _latest_result_or_404(ctx, study)
        text = result.draft_text
        if not text:
            path = _file_under(
                ctx, Path("results") / study.study_instance_uid / "draft.txt", "draft"
            )
            text = path.read_text(encoding="utf-8")
        return DraftOut(study_instance_uid=study.study_instance_uid, text=text,
                        disclaimer=DISCLAIMER)

    @app.get("/api/studies/{uid}/fhir", dependencies=Auth, tags=["results"],
             response_class=Response,
             responses={200: {"content": {"application/fhir+json": {}}}})
    def fhir(ctx: Ctx, uid: str) -> Response:
        """The FHIR R4 Bundle (preliminary DiagnosticReport and Observations)."""
        study = _study_or_404(ctx, uid)
        _latest_result_or_404(ctx, study)
        path = _file_under(
            ctx, Path("results") / study.study_instance_uid / "fhir.json", "FHIR bundle"
        )
        return Response(path.read_bytes(), media_type="application/fhir+json")

    @app.get("/api/studies/{uid}/sr", dependencies=Auth, tags=["results"],
             response_class=FileResponse,
             responses={200: {"content": {"application/dicom": {}}}})
    def sr(ctx: Ctx, uid: str) -> FileResponse:
        """The preliminary DICOM Comprehensive SR, as a download."""
        study = _study_or_404(ctx, uid)
        result = _latest_result_or_404(ctx, study)
        path = _file_under(ctx, result.sr_path, "DICOM SR")
        return FileResponse(path, media_type="application/dicom",
                            filename=f"{study.study_instance_uid}_sr.dcm")

    @app.get("/api/studies/{uid}/heatmap.png", dependencies=Auth, tags=["results"],
             response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
    def heatmap(
        ctx: Ctx,
        uid: str,
        finding: Annotated[str | None, Query(
            description="the finding; default the first flagged one, else the first"
        )] = None,
    ) -> FileResponse:
        """A Grad-CAM heatmap overlay of one finding."""
        study = _study_or_404(ctx, uid)
        result = _latest_result_or_404(ctx, study)
        paths = {str(k): str(v) for k, v in result.heatmap_paths.items()}
        if not paths:
            raise HTTPException(404, f"no heatmaps were made for study {uid}")
        if finding is None:
            flagged = [str(f) for f in result.flags if str(f) in paths]
            finding = flagged[0] if flagged else next(iter(paths))
        if finding not in paths:
            raise HTTPException(
                404, f"no heatmap for finding {finding!r}; available: {', '.join(paths)}"
            )
        return FileResponse(_file_under(ctx, paths[finding], "heatmap"),
                            media_type="image/png")

    @app.post("/api/studies/{uid}/priority", response_model=StudyOut, dependencies=Auth,
              tags=["review"])
    def priority(ctx: Ctx, uid: str, body: PriorityIn) -> StudyOut:
        """Set a person's priority (recorded as a 'reprioritise' review; never lowered
        by a later model result)."""
        study = _study_or_404(ctx, uid)
        add_review(ctx.engine, study.study_instance_uid, reviewer=body.reviewer,
                   action="reprioritise", priority=body.priority)
        logger.info("%s set the priority of %s to %d", body.reviewer, uid, body.priority)
        return _study_out(_study_or_404(ctx, uid))

    @app.post("/api/studies/{uid}/review", response_model=ReviewOut, dependencies=Auth,
              tags=["review"])
    def review(ctx: Ctx, uid: str, body: ReviewIn) -> ReviewOut:
        """Accept the AI draft, or correct it (``text`` is the corrected report)."""
        study = _study_or_404(ctx, uid)
        if body.action == "correct" and not body.text:
            raise HTTPException(422, "a 'correct' review needs the corrected report in 'text'")
        if not list_results(ctx.engine, study.study_instance_uid):
            raise HTTPException(
                409, f"study {uid} has no AI draft yet (status {study.status}); nothing to "
                "accept or correct",
            )
        r = add_review(ctx.engine, study.study_instance_uid, reviewer=body.reviewer,
                       action=body.action, text=body.text)
        logger.info("%s: %s of study %s", body.reviewer, body.action, uid)
        return ReviewOut(id=r.id, reviewer=r.reviewer, action=r.action, text=r.text,
                         priority=r.priority, created_at=r.created_at)

    @app.get("/api/deliveries", response_model=list[DeliveryOut], dependencies=Auth,
             tags=["deliveries"])
    def deliveries(
        ctx: Ctx,
        status: Annotated[str | None, Query(
            description=f"one of {', '.join(DELIVERY_STATUSES)}"
        )] = None,
        uid: Annotated[str | None, Query(description="only this study's")] = None,
    ) -> list[DeliveryOut]:
        """Results sent back to a PACS or RIS: pending, sent, or failed (with the error)."""
        if status is not None and status not in DELIVERY_STATUSES:
            raise HTTPException(
                400, f"unknown status {status!r}; use one of {', '.join(DELIVERY_STATUSES)}"
            )
        if uid is not None:
            _study_or_404(ctx, uid)
        return _deliveries_out(ctx.engine, list_deliveries(ctx.engine, status, uid))

    @app.post("/api/upload", response_model=UploadOut, dependencies=Auth, tags=["upload"],
              responses={413: {"description": "a file is too large"},
                         422: {"description": "every file was refused"}})
    def upload(
        ctx: Ctx,
        files: Annotated[list[UploadFile], File(description="DICOM, PNG or JPEG files")],
        patient_id: Annotated[str, Form(description="Patient ID for PNG/JPEG")] = "",
        patient_name: Annotated[str, Form(description="Patient's Name, Family^Given")] = "",
    ) -> JSONResponse:
        """Store radiographs as if a PACS had sent them; PNG/JPEG become Secondary Captures.

        Answers 200 when any file was stored (or was already), 422 when all were refused.
        """
        if len(files) > ctx.max_upload_files:
            raise HTTPException(
                413, f"{len(files)} files in one upload; at most {ctx.max_upload_files}"
            )
        too_big = HTTPException(
            413, f"a file is larger than the {ctx.max_upload_bytes} bytes allowed per file"
        )
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
                max_pixels=ctx.max_image_pixels,
            ))
        out = UploadOut(files=items, disclaimer=DISCLAIMER)
        refused = all(i.status == "refused" for i in items)
        return JSONResponse(out.model_dump(mode="json"), status_code=422 if refused else 200)
