"""A fresh SQLite worklist in tmp_path and a helper to add studies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from radiolens.worklist import Study, open_worklist, record_instance


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = open_worklist(tmp_path / "worklist.db")
    yield eng
    eng.dispose()


def add_instance(engine: Engine, study: str, sop: str, patient: str = "P1") -> tuple[Study, bool]:
    """Record one instance of ``study`` (UIDs given as short suffixes)."""
    meta = {
        "sop_instance_uid": f"1.2.3.{sop}",
        "study_instance_uid": f"1.2.{study}",
        "series_instance_uid": f"1.2.{study}.1",
        "patient_id": patient,
        "study_date": "20240102",
        "modality": "DX",
    }
    return record_instance(engine, meta=meta, path=f"dicom/1.2.{study}/1.2.3.{sop}.dcm", size=100)
