"""Local user accounts: argon2-hashed passwords, personal API tokens, browser sessions.

Two roles: ``reviewer`` (reads the worklist, signs reviews) and ``admin`` (also
re-queues studies and manages users). Secrets are never stored: passwords as argon2id
hashes (``argon2-cffi``), API tokens and session ids as SHA-256 digests (they are random
32-byte values, so a fast digest is safe). Each browser session carries its own CSRF
token, which every state-changing request must echo.

Example:
    >>> add_user(engine, "ada", "reviewer", "correct horse battery")    # doctest: +SKIP
    >>> token = issue_api_token(engine, "ada")                          # doctest: +SKIP
    >>> user_for_api_token(engine, token).name                          # doctest: +SKIP
    'ada'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Engine, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from radiolens.errors import ConfigError, MissingDependencyError
from radiolens.worklist.db import reading
from radiolens.worklist.models import Base, utcnow

__all__ = [
    "ROLES",
    "SESSION_HOURS",
    "Principal",
    "User",
    "UserSession",
    "add_user",
    "check_password",
    "csrf_ok",
    "end_session",
    "issue_api_token",
    "list_users",
    "session_principal",
    "start_session",
    "user_for_api_token",
]

#: The roles a user can have.
ROLES = ("reviewer", "admin")
#: How long a browser session lasts without a new login.
SESSION_HOURS = 12
#: Shortest password accepted.
MIN_PASSWORD = 10

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class User(Base):
    """A person who signs reviews (or administers the service)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    token_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UserSession(Base):
    """A logged-in browser: the digest of its cookie value and its CSRF token."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_fk: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: a user's name and role, and how they authenticated."""

    name: str
    role: str
    via: str  # "session", "token" or "service"
    csrf_token: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _hasher() -> Any:
    try:
        from argon2 import PasswordHasher
    except ImportError as exc:  # pragma: no cover - argon2-cffi is in the serve extra
        raise MissingDependencyError("argon2-cffi", "serve") from exc
    return PasswordHasher()


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"user name {name[:70]!r} is not valid: use 1-64 letters, digits, "
                          "'.', '_' or '-', starting with a letter or digit")
    return name


def add_user(bind: Engine, name: str, role: str, password: str) -> User:
    """Create a user with an argon2id password hash.

    Raises:
        ConfigError: a bad name, an unknown role, a short password, or the name is taken.
    """
    _check_name(name)
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters")
    hashed = _hasher().hash(password)
    with Session(bind) as session, session.begin():
        if session.scalars(select(User).where(User.name == name)).first() is not None:
            raise ConfigError(f"user {name!r} exists already")
        user = User(name=name, role=role, password_hash=hashed)
        session.add(user)
    return user


def list_users(bind: Engine) -> list[User]:
    """Every user, by name."""
    with Session(bind) as session:
        return list(session.scalars(select(User).order_by(User.name)))


def _user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise ConfigError(f"no user {name!r}; add one with `radiolens users add {name}`")
    return user


def issue_api_token(bind: Engine, name: str) -> str:
    """A new personal API token for ``name`` (replacing the old one); shown only now."""
    token = "rl_" + secrets.token_urlsafe(32)
    with Session(bind) as session, session.begin():
        _user(session, name).token_digest = _digest(token)
    return token


def _principal(user: User, via: str, csrf: str | None = None) -> Principal:
    return Principal(name=user.name, role=user.role, via=via, csrf_token=csrf)


def user_for_api_token(bind: Engine, token: str) -> Principal | None:
    """The user whose personal token this is, or None."""
    if not token.startswith("rl_"):
        return None
    with Session(reading(bind)) as session:
        user = session.scalars(select(User).where(User.token_digest == _digest(token))).first()
        return None if user is None or user.disabled else _principal(user, "token")


def check_password(bind: Engine, name: str, password: str) -> Principal | None:
    """The user when ``password`` is theirs, else None (same work for unknown names)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = _hasher()
    with Session(bind) as session:
        user = session.scalars(select(User).where(User.name == name)).first()
        stored = user.password_hash if user is not None else _DUMMY_HASH.get(hasher)
        try:
            hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or user.disabled:
            return None
        return _principal(user, "session")


class _DummyHash:
    """A hash to verify against for unknown names, so timing does not reveal them."""

    value: str | None = None

    def get(self, hasher: Any) -> str:
        if self.value is None:
            self.value = hasher.hash(secrets.token_hex(16))
        return self.value


_DUMMY_HASH = _DummyHash()


def start_session(bind: Engine, name: str, now: dt.datetime | None = None
                  ) -> tuple[str, Principal]:
    """Open a browser session: the cookie value (secret) and the principal with its CSRF."""
    now = now or dt.datetime.now(dt.UTC)
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with Session(bind) as session, session.begin():
        user = _user(session, name)
        session.add(UserSession(digest=_digest(cookie), user_fk=user.id, csrf_token=csrf,
                                created_at=now,
                                expires_at=now + dt.timedelta(hours=SESSION_HOURS)))
        principal = _principal(user, "session", csrf)
    return cookie, principal


def session_principal(bind: Engine, cookie: str, now: dt.datetime | None = None
                      ) -> Principal | None:
    """The principal of a live session cookie, or None (unknown, expired, disabled user)."""
    now = now or dt.datetime.now(dt.UTC)
    with Session(reading(bind)) as session:
        row = session.scalars(select(UserSession).where(
            UserSession.digest == _digest(cookie))).first()
        if row is None or row.expires_at.replace(tzinfo=row.expires_at.tzinfo or dt.UTC) <= now:
            return None
        user = session.get(User, row.user_fk)
        if user is None or user.disabled:
            return None
        return _principal(user, "session", row.csrf_token)


def end_session(bind: Engine, cookie: str) -> None:
    """Log a browser out (its cookie stops working at once)."""
    with Session(bind) as session, session.begin():
        row = session.scalars(select(UserSession).where(
            UserSession.digest == _digest(cookie))).first()
        if row is not None:
            session.delete(row)


def csrf_ok(principal: Principal, given: str | None) -> bool:
    """Whether a state-changing request from a browser session echoed its CSRF token."""
    if principal.via != "session":
        return True  # bearer tokens are not sent by browsers on their own
    return bool(given) and principal.csrf_token is not None and hmac.compare_digest(
        given or "", principal.csrf_token)
