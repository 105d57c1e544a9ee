"""A tiny model and a data folder with stored studies, for worker and service tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

StoreStudy = Callable[..., str]


@pytest.fixture
def store_study(tmp_path: Path) -> StoreStudy:
    """Write a synthetic study into ``tmp_path/data`` and record it; returns its UID."""
    from radiolens.imaging import to_secondary_capture, write_dicom_atomic
    from radiolens.receiver import instance_meta
    from radiolens.worklist import default_db_path, open_worklist, record_instance

    data_dir = tmp_path / "data"
    engine = open_worklist(default_db_path(data_dir))
    counter = iter(range(1, 1000))

    def store(*, corrupt: bool = False, patient_id: str | None = None,
              header: dict[str, str] | None = None, blank: bool = False) -> str:
        i = next(counter)
        rng = np.random.default_rng(i)
        pixels = (rng.random((80, 72)) * 255).astype(np.uint8)
        if blank:
            pixels[:] = 128
        ds = to_secondary_capture(pixels, patient_id=patient_id or f"P{i:03d}",
                                  patient_name=f"TEST^{i}", accession_number=f"A{i}")
        for keyword, value in (header or {}).items():
            setattr(ds, keyword, value)
        rel = Path("dicom") / str(ds.StudyInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
        write_dicom_atomic(ds, data_dir / rel)
        if corrupt:
            (data_dir / rel).write_bytes((data_dir / rel).read_bytes()[:300])
        record_instance(engine, meta=instance_meta(ds), path=rel,
                        size=(data_dir / rel).stat().st_size)
        return str(ds.StudyInstanceUID)

    return store
