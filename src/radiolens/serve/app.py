"""The FastAPI application: the triage worklist API, DICOMweb and the web UI.

Every route under ``/api`` and ``/dicomweb`` needs a signed-in principal (the service
token, a personal token, or a browser session with its CSRF token; see
:mod:`radiolens.serve.security`); ``/health`` and the UI's static files do not. The routes
live in :mod:`radiolens.serve.routes`; this module builds the app, translates errors to
HTTP once (:func:`_on_radiolens_error`) and sets the security headers. The app keeps no
global state: its settings live on ``app.state.ctx`` (a :class:`ServeContext`).

Example:
    >>> app = create_app(Path("data"), open_worklist("data/wl.db"), "s3cret")  # doctest: +SKIP
    >>> uvicorn.run(app, port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from radiolens import DISCLAIMER, __version__
from radiolens.errors import (
    ConfigError,
    InstanceRefused,
    MissingDependencyError,
    RadiolensError,
    ReviewConflict,
    WorklistError,
)
from radiolens.imaging.checks import DEFAULT_MAX_PIXELS
from radiolens.serve import routes
from radiolens.serve.context import Auth, Ctx, ServeContext
from radiolens.serve.dicomweb import dicomweb_router
from radiolens.serve.schemas import HealthOut
from radiolens.serve.security import principal_of, session_router
from radiolens.serve.upload import UploadSizeLimit
from radiolens.worklist import count_studies

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

#: Paths whose POST bodies are capped as they stream in (uploads and STOW-RS).
_CAPPED_PATHS = ("/api/upload", "/dicomweb/studies", "/dicomweb/studies/")

_UI_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; "
        "style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
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


def _status_for(exc: RadiolensError) -> int:
    if isinstance(exc, InstanceRefused):
        return 422
    if isinstance(exc, ReviewConflict):
        return 409
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
    forward_to: str | None = None,
    card_figures: Mapping[str, Mapping[str, float]] | None = None,
    organization: str = "radiolens",
) -> FastAPI:
    """Build the triage API, DICOMweb and the web UI over a worklist.

    Args:
        data_dir: the service's data directory (DICOM files and results live under it).
        engine: the worklist engine (:func:`radiolens.worklist.open_worklist`).
        api_token: the service token (the administrator's Bearer token).
        model_name: the model the worker runs (shown in the UI).
        ae_title: the receiver's AE title (shown in the UI).
        dicom_port: the receiver's port (shown in the UI), if it runs.
        max_upload_bytes: largest accepted uploaded file (413 above).
        max_upload_files: most files in one upload request.
        max_image_pixels: images with more pixels are refused before decoding.
        health_reasons: returns why the service is degraded beyond the storage probes
            (the supervisor's "worker restarting"); shown on ``/health`` when signed in.
        forward_to: ``AE@host:port`` that signed SRs are sent to.
        card_figures: the model card's validation sensitivity and specificity per label
            (the agreement page compares the reviewers' calls with them).
        organization: the verifying organization named in signed SRs.

    Returns:
        The FastAPI application (OpenAPI page at ``/docs``, behind login).

    Raises:
        ConfigError: the token is empty.
    """
    if not api_token or not api_token.strip():
        raise ConfigError("the API token is empty; set RADIOLENS_API_TOKEN or let serve make one")
    app = FastAPI(
        title="radiolens triage API", version=__version__,
        docs_url=None, redoc_url=None, openapi_url=None,  # served by routes.docs, behind login
        description=(
            "Worklist of chest radiographs scored by a triage model, with preliminary AI "
            "drafts (text, DICOM SR, FHIR) and heatmaps, signed reads, and DICOMweb. Every "
            "request under /api and /dicomweb needs `Authorization: Bearer <token>` or a "
            "session from `POST /api/session` (then `X-CSRF-Token` on changes).\n\n"
            + DISCLAIMER),
    )
    app.state.ctx = ServeContext(
        data_dir=Path(data_dir), engine=engine, api_token=api_token.strip(),
        model_name=model_name, ae_title=ae_title, dicom_port=dicom_port,
        max_upload_bytes=max_upload_bytes, max_upload_files=max_upload_files,
        max_image_pixels=max_image_pixels, health_reasons=health_reasons,
        forward_to=forward_to, card_figures=dict(card_figures or {}),
        organization=organization,
    )
    app.add_exception_handler(RadiolensError, _on_radiolens_error)
    app.add_middleware(UploadSizeLimit, max_bytes=max_upload_bytes * max_upload_files
                       + 1024 * 1024, paths=_CAPPED_PATHS)
    app.middleware("http")(_guard_and_headers)
    _add_service_routes(app)
    app.include_router(session_router())
    for module in (routes.worklist, routes.results, routes.review, routes.admin, routes.docs):
        app.include_router(module.router)
    app.include_router(dicomweb_router(Auth))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


async def _guard_and_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Refuse unauthenticated uploads before their body is read; add security headers."""
    path = request.url.path
    capped = request.method == "POST" and any(
        path == p or (p.endswith("/") and path.startswith(p)) for p in _CAPPED_PATHS)
    # the body's size is capped as it streams in, by UploadSizeLimit (inside this)
    if capped and principal_of(request) is None:
        return JSONResponse({"detail": "not signed in: log in, or send the header "
                                       "'Authorization: Bearer <token>'"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    response = await call_next(request)
    for key, value in _COMMON_HEADERS.items():
        response.headers.setdefault(key, value)
    if path.startswith(("/api/", "/dicomweb/")) or path in ("/health", "/openapi.json"):
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("Content-Security-Policy", _API_CSP)
    else:
        for key, value in _UI_HEADERS.items():
            response.headers.setdefault(key, value)
    return response


def _add_service_routes(app: FastAPI) -> None:
    """The page and the health check (no login needed)."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health", response_model=HealthOut, response_model_exclude_none=True,
             tags=["service"])
    def health(ctx: Ctx, request: Request) -> HealthOut:
        """``ok`` or ``degraded`` (disk full, database read-only or unavailable, worker
        restarting), version and study counts; the reasons only when signed in."""
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
        try:
            authorized = principal_of(request) is not None
        except Exception:  # the accounts table is unreadable: the database is down
            authorized = False
        return HealthOut(status="degraded" if reasons else "ok", version=__version__,
                         disclaimer=DISCLAIMER, counts=counts if authorized else None,
                         reasons=reasons if authorized else None)
