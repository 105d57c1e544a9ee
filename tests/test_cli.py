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


@pytest.mark.parametrize(("args", "hint"), [
    (["--spilt", "val"], "did you mean '--split'?"),
    # an option of another command is named as such, never "did you mean" itself
    (["--labels", "abnormal"], "--labels is an option of train, not of evaluate"),
    (["--zzz"], "unrecognized arguments: --zzz\n"),
])
def test_unknown_option_hints_name_the_command_being_run(
        args: list[str], hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--checkpoint", "x", "--data", "y", "-o", "z", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and hint in err
    assert "did you mean '--labels'" not in err


def test_console_script_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "radiolens.cli.main", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "label" in proc.stdout


def test_label_demo_prints_evidence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--labeller"]) == 0
    out = capsys.readouterr().out
    assert "EX-001" in out and "negation (no)" in out and DISCLAIMER in out
    assert "No pleural effusion or pneumothorax" in out


def test_labeller_demo_keeps_its_columns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--labeller", "--width", "100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    evidence_col = lines[next(i for i, ln in enumerate(lines) if "evidence" in ln and
                              "rule" in ln)].index("evidence")
    long_rule = next(ln for ln in lines if "blocked (" in ln)
    assert long_rule.rstrip().endswith(")")  # the rule stands alone, evidence below it
    after = lines[lines.index(long_rule) + 1]
    assert after[:evidence_col].strip() == "" and after[evidence_col:].strip()
    assert all(len(ln) <= 100 for ln in lines if ln != DISCLAIMER)  # kept whole


def test_demo_table_cuts_with_an_ellipsis() -> None:
    from radiolens.cli.demo_triage import _cut

    text = "No acute cardiopulmonary abnormality detected by the AI model and more words"
    assert _cut(text, 60).endswith("…") and len(_cut(text, 60)) <= 60
    assert _cut("short", 60) == "short"
