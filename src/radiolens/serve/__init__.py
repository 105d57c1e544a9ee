"""The triage service's HTTP API and web UI (FastAPI).

Needs the ``serve`` extra; never imports torch or :mod:`radiolens.train`.

Example:
    >>> from radiolens.serve import create_app
    >>> app = create_app(Path("data"), engine, api_token="s3cret")  # doctest: +SKIP
"""

from __future__ import annotations

from radiolens.serve.app import (
    DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_MAX_UPLOAD_FILES,
    UI_DISCLAIMER,
    ServeContext,
    create_app,
)
from radiolens.serve.upload import ingest_upload

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "DEFAULT_MAX_UPLOAD_FILES",
    "UI_DISCLAIMER",
    "ServeContext",
    "create_app",
    "ingest_upload",
]
