"""Several receivers on one port (``SO_REUSEPORT``): the kernel spreads the associations,
each receiver commits its own, one worklist holds them all."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from radiolens.dicomnet import send_files
from radiolens.receiver import DicomReceiver
from radiolens.worklist import list_studies, make_engine, open_worklist

from ..dicomnet.synthetic import free_port, needs_dcmtk, write_dicom

pytestmark = [pytest.mark.pacs, needs_dcmtk,
              pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"),
                                 reason="needs SO_REUSEPORT")]


def test_two_receivers_share_one_port_and_one_worklist(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_worklist(data / "worklist.db").dispose()
    port = free_port()
    engines = [make_engine(data / "worklist.db") for _ in range(2)]
    receivers = [DicomReceiver(data, engine, host="127.0.0.1", port=port, reuse_port=True)
                 for engine in engines]
    files = [write_dicom(tmp_path / "in", f"shared{i}", patient_id=f"P{i % 3}")
             for i in range(16)]
    for receiver in receivers:
        receiver.start()
    try:
        for path in files:  # one association each: the kernel picks a receiver per connection
            assert send_files([path], f"RADIOLENS@127.0.0.1:{port}").ok
    finally:
        for receiver in receivers:
            receiver.stop()
    associations = [r.stats["associations"] for r in receivers]
    assert sum(associations) == len(files)
    assert min(associations) > 0, associations  # both took a share
    assert sum(r.stats["received"] for r in receivers) == len(files)
    assert len(list_studies(engines[0])) == len(files)
    assert len(list((data / "dicom").rglob("*.dcm"))) == len(files)
    for engine in engines:
        engine.dispose()


def test_a_taken_port_is_still_refused_without_reuse_port(tmp_path: Path) -> None:
    port = free_port()
    shared = DicomReceiver(tmp_path / "a", host="127.0.0.1", port=port, reuse_port=True)
    shared.start()
    try:
        alone = DicomReceiver(tmp_path / "b", host="127.0.0.1", port=port)
        with pytest.raises(OSError, match="choose another port"):
            alone.start()
        assert not alone.running
    finally:
        shared.stop()
