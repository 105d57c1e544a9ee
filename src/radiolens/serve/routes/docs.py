"""The OpenAPI page, served from local assets (``swagger-ui-bundle``) behind login.

Nothing is loaded from a CDN, so the page works offline; ``/openapi.json`` and ``/docs``
need a signed-in user (the session cookie, or the bearer token from a script).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from radiolens.serve.context import Auth

__all__ = ["router", "swagger_assets"]

router = APIRouter(include_in_schema=False)

_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>radiolens API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script></body></html>
"""


def swagger_assets() -> Path | None:
    """The folder of the installed Swagger UI bundle, or None when it is not installed."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


@router.get("/openapi.json", dependencies=Auth)
def openapi(request: Request) -> JSONResponse:
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


@router.get("/docs", dependencies=Auth, response_class=HTMLResponse)
def docs() -> HTMLResponse:
    if swagger_assets() is None:
        raise HTTPException(501, "the API page needs swagger-ui-bundle: "
                                 "pip install 'radiolens[serve]'; /openapi.json works without")
    return HTMLResponse(_PAGE)


@router.get("/docs/assets/{name}", dependencies=Auth)
def asset(name: str) -> FileResponse:
    folder = swagger_assets()
    if folder is None or name not in _ASSETS:
        raise HTTPException(404, "no such asset")
    media = "text/css" if name.endswith(".css") else "text/javascript"
    return FileResponse(folder / name, media_type=media)
