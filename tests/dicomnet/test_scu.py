"""send_files / send_dataset / echo against a radiolens receiver, and address parsing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from radiolens.dicomnet import AeAddress, echo, parse_ae_address, send_dataset, send_files
from radiolens.errors import ConfigError, DicomSendError
from radiolens.receiver import DicomReceiver
from radiolens.worklist import list_studies

from .synthetic import CR, SC, free_port, make_dataset, needs_dcmtk, write_dicom


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PACS@10.0.0.5:104", AeAddress("PACS", "10.0.0.5", 104)),
        ("ORTHANC@localhost:4242", AeAddress("ORTHANC", "localhost", 4242)),
        ("MY AE@pacs.example.org:11112", AeAddress("MY AE", "pacs.example.org", 11112)),
        ("PACS@[::1]:104", AeAddress("PACS", "::1", 104)),
    ],
)
def test_parse_ae_address(text: str, expected: AeAddress) -> None:
    assert parse_ae_address(text) == expected
    assert parse_ae_address(str(expected)) == expected


@pytest.mark.parametrize(
    "text",
    ["PACS", "PACS@host", "@host:104", "PACS@host:0", "PACS@host:70000", "PACS@:104",
     "A_TITLE_LONGER_THAN_16@host:104", "PA\\CS@host:104"],
)
def test_parse_ae_address_errors(text: str) -> None:
    with pytest.raises(ConfigError, match=r"AE@host:port|port|AE title"):
        parse_ae_address(text)


def test_unreachable_peer() -> None:
    to = AeAddress("NOBODY", "127.0.0.1", free_port())
    assert echo(to, timeout=5) is False
    with pytest.raises(DicomSendError, match="cannot reach"):
        send_dataset(make_dataset(seed="x"), to, timeout=5)




@pytest.fixture
def strict_receiver(tmp_path: Path, engine: Engine) -> Iterator[DicomReceiver]:
    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port(),
                        require_called_aet=True)
    with scp:
        yield scp


@pytest.mark.pacs
@needs_dcmtk
def test_send_files_and_echo(
    tmp_path: Path, strict_receiver: DicomReceiver, engine: Engine
) -> None:
    to = f"RADIOLENS@127.0.0.1:{strict_receiver.port}"
    assert echo(to)
    junk = tmp_path / "junk.dcm"
    junk.write_text("not dicom")
    files = [
        write_dicom(tmp_path / "in", "a"),
        write_dicom(tmp_path / "in", "b", sop_class=CR),
        write_dicom(tmp_path / "in", "c", sop_class=SC),
        junk,
        write_dicom(tmp_path / "in", "colour", sop_class=SC, colour=True),
    ]
    report = send_files(files, to)
    assert report.sent == files[:3]
    reasons = dict(report.failed)
    assert reasons[junk] == "not a DICOM file (no DICOM file header)"  # no pydicom hint
    assert "0xC001" in reasons[files[4]]
    assert not report.ok
    assert len(list_studies(engine)) == 3


@pytest.mark.pacs
@needs_dcmtk
def test_wrong_called_ae_is_rejected(strict_receiver: DicomReceiver) -> None:
    to = f"SOMEONE@127.0.0.1:{strict_receiver.port}"
    assert echo(to) is False
    with pytest.raises(DicomSendError, match="rejected the association"):
        send_dataset(make_dataset(seed="r"), to)


def test_send_dataset_needs_transfer_syntax() -> None:
    ds = make_dataset(seed="nometa")
    del ds.file_meta
    with pytest.raises(DicomSendError, match="TransferSyntaxUID"):
        send_dataset(ds, "X@127.0.0.1:104")
