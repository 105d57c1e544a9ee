"""``radiolens users``: add, token, list, and the mistakes a new admin makes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from radiolens.cli.main import main
from radiolens.worklist import default_db_path, open_worklist
from radiolens.worklist.accounts import check_password, user_for_api_token


def _run(args: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(args)


def test_add_token_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path / "data")
    assert _run(["users", "add", "ada", "--role", "admin", "--password-stdin",
                 "--data-dir", d], "a long password\n", monkeypatch) == 0
    assert "added admin ada" in capsys.readouterr().out
    assert main(["users", "token", "ada", "--data-dir", d]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert "shown only now" in out.err
    assert main(["users", "list", "--data-dir", d]) == 0
    assert capsys.readouterr().out.split("\t")[:2] == ["ada", "admin"]
    engine = open_worklist(default_db_path(d))
    try:
        assert check_password(engine, "ada", "a long password") is not None
        who = user_for_api_token(engine, token)
        assert who is not None and who.name == "ada"
    finally:
        engine.dispose()


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["users", "add", "bob", "--password-stdin"], "short\n", "at least 10 characters"),
    (["users", "add", "bob", "--password-stdin"], "", "no password on standard input"),
    (["users", "add", "bob"], "", "use --password-stdin"),
    (["users", "token", "nobody"], "", "no user 'nobody'"),
])
def test_mistakes_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str], args: list[str],
                               stdin: str, message: str) -> None:
    d = tmp_path / "data"
    open_worklist(default_db_path(d)).dispose()
    assert _run([*args, "--data-dir", str(d)], stdin, monkeypatch) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_token_needs_an_existing_worklist(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "list", "--data-dir", str(tmp_path / "typo")]) == 2
    assert "no worklist at" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
