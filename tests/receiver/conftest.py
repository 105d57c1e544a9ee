"""A running DicomReceiver on a free port, with its data directory and worklist engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from radiolens.receiver import DicomReceiver

from ..dicomnet.synthetic import free_port


@pytest.fixture
def receiver(tmp_path: Path, engine: Engine) -> Iterator[DicomReceiver]:
    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port())
    scp.start()
    try:
        yield scp
    finally:
        scp.stop()
