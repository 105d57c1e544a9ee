"""Who is asking: the service token, personal API tokens, browser sessions with CSRF.

Three ways in, one :class:`~radiolens.worklist.accounts.Principal` out:

* ``Authorization: Bearer <service token>`` (``RADIOLENS_API_TOKEN``): the administrator;
* ``Authorization: Bearer rl_...`` (``radiolens users token NAME``): that user, for scripts;
* the ``radiolens_session`` cookie set by ``POST /api/session`` (a login form): that user,
  in a browser. The cookie is HttpOnly and SameSite=Strict, and every state-changing
  request made with it must carry the session's CSRF token in ``X-CSRF-Token``.

Routes depend on :func:`require_principal` (any signed-in user) or :func:`require_admin`.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from radiolens.errors import WorklistError
from radiolens.worklist.accounts import (
    SESSION_HOURS,
    Principal,
    check_password,
    csrf_ok,
    end_session,
    session_principal,
    start_session,
    user_for_api_token,
)

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Principal",
    "require_admin",
    "require_principal",
    "session_router",
    "token_matches",
]

SESSION_COOKIE = "radiolens_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(
    auto_error=False,
    description="The service token (printed by `radiolens serve`, kept in DATA_DIR/api_token)"
                " or a personal token from `radiolens users token NAME`.",
)


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison of a presented token with the expected one."""
    return bool(token) and secrets.compare_digest(given.strip().encode("utf-8"),
                                                  token.encode("utf-8"))


def principal_of(request: Request) -> Principal | None:
    """The principal a request authenticates as, or None (CSRF is not checked here).

    Raises:
        WorklistError: the accounts cannot be read (the database is unavailable).
    """
    try:
        return _principal_of(request)
    except SQLAlchemyError as exc:
        raise WorklistError(f"worklist database error: {type(exc).__name__}") from exc


def _principal_of(request: Request) -> Principal | None:
    ctx: Any = request.app.state.ctx
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        if token_matches(given, ctx.api_token):
            return Principal(name="admin", role="admin", via="service")
        return user_for_api_token(ctx.engine, given.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return session_principal(ctx.engine, cookie)
    return None


def require_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Dependency: the signed-in principal; 401 without one, 403 on a missing CSRF token."""
    principal = principal_of(request)
    if principal is None:
        wrong = bool(request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE))
        raise HTTPException(
            401, "wrong API token or expired session" if wrong else
            "not signed in: log in, or send the header 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"' if wrong else "Bearer"})
    if request.method not in _SAFE_METHODS and not csrf_ok(
            principal, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, f"missing or stale CSRF token: send the {CSRF_HEADER} header "
                                 "that the login answer gave (log in again if it is lost)")
    request.state.principal = principal
    return principal


def require_admin(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
    """Dependency: an administrator (the service token or a user with role admin)."""
    if not principal.is_admin:
        raise HTTPException(403, "this needs an administrator")
    return principal


class LoginIn(BaseModel):
    """A login form."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    """Who is signed in, and the CSRF token their state-changing requests must carry."""

    name: str
    role: str
    via: str
    csrf_token: str | None = None


def _out(p: Principal) -> SessionOut:
    return SessionOut(name=p.name, role=p.role, via=p.via, csrf_token=p.csrf_token)


def session_router() -> APIRouter:
    """``/api/session``: log in (POST), who am I (GET), log out (DELETE)."""
    router = APIRouter(prefix="/api/session", tags=["session"])

    @router.post("", response_model=SessionOut, summary="log in with a name and password")
    def login(request: Request, response: Response, body: LoginIn) -> SessionOut:
        ctx: Any = request.app.state.ctx
        principal = check_password(ctx.engine, body.name, body.password)
        if principal is None:
            raise HTTPException(401, "wrong user name or password")
        cookie, principal = start_session(ctx.engine, principal.name)
        response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_HOURS * 3600,
                            httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return _out(principal)

    @router.get("", response_model=SessionOut, summary="the signed-in user")
    def whoami(principal: Annotated[Principal, Depends(require_principal)]) -> SessionOut:
        return _out(principal)

    @router.delete("", status_code=204, summary="log out")
    def logout(request: Request, response: Response,
               _principal: Annotated[Principal, Depends(require_principal)]) -> Response:
        ctx: Any = request.app.state.ctx
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            end_session(ctx.engine, cookie)
        out = Response(status_code=204)
        out.delete_cookie(SESSION_COOKIE, path="/")
        return out

    return router
