"""`radiolens send` and `radiolens serve`: user mistakes get one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiolens.cli.main import main
from radiolens.receiver import DicomReceiver
from radiolens.worklist import get_study, open_worklist

from ..dicomnet.synthetic import free_port, make_dataset, write_dicom


@pytest.mark.parametrize("args, message", [
    (["send", "x.dcm", "--to", "nohost"], "AE@"),
    (["send", "missing.dcm", "--to", "PACS@127.0.0.1:104"], "no such file"),
    (["serve", "--dicom-port", "70000"], "dicom_port"),
    (["serve", "--model", "builtin:nope"], "nope"),
])
def test_user_mistakes(args: list[str], message: str, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.dcm").write_bytes(b"")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_send_to_a_receiver(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [write_dicom(tmp_path / "in", f"cli-send-{i}") for i in range(2)]
    engine = open_worklist(tmp_path / "wl.db")
    port = free_port()
    with DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=port):
        assert main(["send", str(tmp_path / "in"), "--to", f"RADIOLENS@127.0.0.1:{port}"]) == 0
    assert "sent 2 of 2" in capsys.readouterr().out
    uid = str(make_dataset(seed="cli-send-0").StudyInstanceUID)
    assert get_study(engine, uid) is not None
    del files


def test_send_to_nobody_says_what_to_check(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = write_dicom(tmp_path, "nobody")
    assert main(["send", str(path), "--to", f"PACS@127.0.0.1:{free_port()}"]) == 2
    assert "127.0.0.1" in capsys.readouterr().err
