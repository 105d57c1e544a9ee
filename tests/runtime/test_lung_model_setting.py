"""``radiolens serve --lung-model RUN_DIR|none`` (and ``RADIOLENS_LUNG_MODEL``)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from radiolens.cli.main import main
from radiolens.runtime import TriageService, load_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_lung_model_setting_reaches_the_worker(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    assert load_settings({}).lung_model == "builtin:lungs"
    monkeypatch.setenv("RADIOLENS_LUNG_MODEL", "none")
    settings = load_settings({"data_dir": tmp_path})
    assert settings.lung_model == "none"
    assert TriageService(settings)._worker_options()["lung_model"] == "none"
    assert load_settings({"lung_model": str(tmp_path)}).lung_model == str(tmp_path)


def test_a_lung_model_that_is_not_there_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens.models.info import builtin_names

    if not builtin_names():
        pytest.skip("no builtin classifier installed for the default --model")
    monkeypatch.chdir(tmp_path)
    args = ["serve", "--model", f"builtin:{builtin_names()[0]}", "--lung-model",
            str(tmp_path / "no-such-run"), "--dicom-port", str(_free_port()),
            "--http-port", str(_free_port()), "--data-dir", str(tmp_path / "data")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--lung-model" in err and "no-such-run" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_output_lag_setting_reaches_the_worker(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from radiolens.errors import ConfigError
    from radiolens.worker import Worker

    assert load_settings({}).output_lag_s == 5.0
    monkeypatch.setenv("RADIOLENS_OUTPUT_LAG_S", "0")
    options = TriageService(load_settings({"data_dir": tmp_path}))._worker_options()
    assert options["output_lag_s"] == 0.0
    assert Worker(**options).output_lag_s == 0.0
    monkeypatch.setenv("RADIOLENS_OUTPUT_LAG_S", "-1")
    with pytest.raises(ConfigError, match="output_lag_s"):
        load_settings({})
