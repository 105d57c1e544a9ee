"""What every route needs: the service's context, and who is asking.

:class:`ServeContext` lives on ``app.state.ctx`` (set by :func:`radiolens.serve.create_app`);
routes take it as the ``Ctx`` dependency, and ``Auth`` / ``Admin`` as their route
dependencies (see :mod:`radiolens.serve.security`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from sqlalchemy import Engine

from radiolens.imaging.checks import DEFAULT_MAX_PIXELS
from radiolens.serve.security import Principal, require_admin, require_principal

__all__ = ["Admin", "Auth", "Ctx", "ServeContext", "User"]


@dataclass(frozen=True)
class ServeContext:
    """What the routes need, stored on ``app.state.ctx`` by ``create_app``."""

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
    #: ``AE@host:port`` signed SRs are forwarded to (as the worker forwards drafts)
    forward_to: str | None = None
    #: the model card's validation figures, label -> {"sensitivity": .., "specificity": ..}
    card_figures: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: the organization named as verifying organization in signed SRs
    organization: str = "radiolens"


def _ctx(request: Request) -> ServeContext:
    return cast(ServeContext, request.app.state.ctx)


Ctx = Annotated[ServeContext, Depends(_ctx)]
#: The signed-in principal, as a route parameter.
User = Annotated[Principal, Depends(require_principal)]
#: Route dependencies: any signed-in user / an administrator.
Auth: list[Any] = [Depends(require_principal)]
Admin: list[Any] = [Depends(require_admin)]
