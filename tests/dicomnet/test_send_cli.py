"""`radiolens send` and `radiolens convert` as a user runs them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from sqlalchemy import Engine

from radiolens.cli.main import main
from radiolens.dicomnet import DEFAULT_CALLING_AE
from radiolens.receiver import DicomReceiver
from radiolens.worklist import list_studies

from .synthetic import free_port, write_dicom


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() points the radiolens logger at the captured stderr; undo that afterwards."""
    logger = logging.getLogger("radiolens")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def receiver(tmp_path: Path, engine: Engine) -> Iterator[DicomReceiver]:
    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port())
    with scp:
        yield scp


def _png(path: Path, size: int = 96) -> Path:
    arr = np.random.default_rng(0).integers(0, 255, (size, size), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_default_calling_ae_differs_from_the_receivers_called_ae() -> None:
    assert DicomReceiver(".").ae_title != DEFAULT_CALLING_AE
    assert len(DEFAULT_CALLING_AE) <= 16


def test_send_help_names_the_default_calling_ae(capsys: pytest.CaptureFixture[str]) -> None:
    # the parser is built without radiolens.dicomnet (core install), so the help repeats it
    with pytest.raises(SystemExit):
        main(["send", "--help"])
    assert DEFAULT_CALLING_AE in " ".join(capsys.readouterr().out.split())


def test_send_reports_success_once_on_stdout(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_dicom(tmp_path / "in", "ok")
    code = main(["send", str(path), "--to", f"RADIOLENS@127.0.0.1:{receiver.port}"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.splitlines() == [f"sent 1 of 1 files to RADIOLENS@127.0.0.1:{receiver.port}"]
    assert "sent" not in err
    assert len(list_studies(engine)) == 1


def test_send_garbage_gives_one_line_without_pydicom_hint(
    tmp_path: Path, receiver: DicomReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"this is not DICOM" * 20)
    code = main(["send", str(junk), "--to", f"RADIOLENS@127.0.0.1:{receiver.port}"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [f"not sent: {junk}: not a DICOM file (no DICOM file header)"]
    assert "force" not in err
    assert out.splitlines() == [f"sent 0 of 1 files to RADIOLENS@127.0.0.1:{receiver.port}"]


def test_send_a_png_says_convert_it_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = _png(tmp_path / "x.png")
    assert main(["send", str(png), "--to", "RADIOLENS@127.0.0.1:104"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"radiolens send: error: {png} is not DICOM; convert it first "
                           f"with `radiolens convert {png} -o DIR`, then send DIR")


def test_convert_then_send(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png", 128)
    out_dir = tmp_path / "dicom-out"
    assert main(["convert", str(a), str(b), "-o", str(out_dir),
                 "--patient-id", "P-CONV"]) == 0
    assert capsys.readouterr().out.strip() == f"converted 2 of 2 files into {out_dir}"
    written = sorted(out_dir.glob("*.dcm"))
    assert [p.name for p in written] == ["a.dcm", "b.dcm"]
    ds = pydicom.dcmread(written[1])
    assert (ds.Rows, ds.Columns, ds.PatientID) == (128, 128, "P-CONV")
    assert main(["convert", str(a), "-o", str(out_dir)]) == 2  # exists: --force to replace
    assert "--force" in capsys.readouterr().err
    assert main(["send", str(out_dir), "--to", f"RADIOLENS@127.0.0.1:{receiver.port}"]) == 0
    assert len(list_studies(engine)) == 2  # each converted image is its own study
