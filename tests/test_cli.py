"""The radiolens console script: help everywhere, exit codes, demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from radiolens import DISCLAIMER, __version__
from radiolens.cli.main import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_for_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: radiolens" in out
    assert "%%" not in out  # argparse formats help= strings only, not descriptions


def test_version_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["lable"])
    assert exc.value.code == 2 and "did you mean 'label'" in capsys.readouterr().err


def test_console_script_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "radiolens.cli.main", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "label" in proc.stdout


def test_label_demo_prints_evidence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--labeller"]) == 0
    out = capsys.readouterr().out
    assert "EX-001" in out and "negation (no)" in out and DISCLAIMER in out
    assert "No pleural effusion or pneumothorax" in out
