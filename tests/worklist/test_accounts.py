"""Local accounts: argon2 passwords, personal API tokens, sessions with CSRF tokens."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from radiolens.errors import ConfigError
from radiolens.worklist.accounts import (
    SESSION_HOURS,
    User,
    UserSession,
    add_user,
    check_password,
    csrf_ok,
    end_session,
    issue_api_token,
    session_principal,
    start_session,
    user_for_api_token,
)

from .conftest import both_backends

PASSWORD = "correct horse battery"


@both_backends
def test_password_is_hashed_with_argon2_and_checked(engine: Engine) -> None:
    add_user(engine, "ada", "reviewer", PASSWORD)
    with Session(engine) as s:
        stored = s.scalars(select(User.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    ok = check_password(engine, "ada", PASSWORD)
    assert ok is not None and ok.name == "ada" and ok.role == "reviewer"
    assert check_password(engine, "ada", PASSWORD + "x") is None
    assert check_password(engine, "nobody", PASSWORD) is None


@pytest.mark.parametrize(("name", "role", "password", "message"), [
    ("ada", "chief", PASSWORD, "role 'chief' is not one of reviewer, admin"),
    ("ada", "reviewer", "short", "at least 10 characters"),
    ("bad name\n", "reviewer", PASSWORD, "is not valid"),
])
def test_bad_accounts_are_refused(engine: Engine, name: str, role: str, password: str,
                                  message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        add_user(engine, name, role, password)


def test_a_name_is_taken_once(engine: Engine) -> None:
    add_user(engine, "ada", "reviewer", PASSWORD)
    with pytest.raises(ConfigError, match="exists already"):
        add_user(engine, "ada", "admin", PASSWORD)


def test_api_token_identifies_its_user_and_a_new_one_replaces_it(engine: Engine) -> None:
    add_user(engine, "ada", "admin", PASSWORD)
    first = issue_api_token(engine, "ada")
    who = user_for_api_token(engine, first)
    assert who is not None and (who.name, who.role, who.via) == ("ada", "admin", "token")
    second = issue_api_token(engine, "ada")
    assert user_for_api_token(engine, first) is None
    assert user_for_api_token(engine, second) is not None
    with Session(engine) as s:  # only a digest is stored
        assert s.scalars(select(User.token_digest)).one() not in (first, second)
    with pytest.raises(ConfigError, match="no user 'bob'"):
        issue_api_token(engine, "bob")


def test_session_has_csrf_expires_and_ends(engine: Engine) -> None:
    add_user(engine, "ada", "reviewer", PASSWORD)
    now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    cookie, principal = start_session(engine, "ada", now=now)
    assert principal.csrf_token and principal.via == "session"
    again = session_principal(engine, cookie, now=now + dt.timedelta(hours=1))
    assert again is not None and again.csrf_token == principal.csrf_token
    assert csrf_ok(again, principal.csrf_token)
    assert not csrf_ok(again, None) and not csrf_ok(again, "forged")
    late = now + dt.timedelta(hours=SESSION_HOURS, seconds=1)
    assert session_principal(engine, cookie, now=late) is None
    assert session_principal(engine, "not-a-session", now=now) is None
    with Session(engine) as s:
        assert cookie not in s.scalars(select(UserSession.digest)).one()
    end_session(engine, cookie)
    assert session_principal(engine, cookie, now=now) is None


def test_disabled_user_cannot_sign_in(engine: Engine) -> None:
    add_user(engine, "ada", "reviewer", PASSWORD)
    token = issue_api_token(engine, "ada")
    cookie, _ = start_session(engine, "ada")
    with Session(engine) as s, s.begin():
        s.scalars(select(User)).one().disabled = True
    assert check_password(engine, "ada", PASSWORD) is None
    assert user_for_api_token(engine, token) is None
    assert session_principal(engine, cookie) is None
