"""The ingest path refuses a dataset with an element pydicom cannot decode (0xC210)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import Engine

from radiolens.errors import DicomElementError, InstanceRefused
from radiolens.receiver import STATUS_DECODE_FAILED, ingest_dataset
from radiolens.worklist import list_studies
from tests.fuzz.test_fuzz_targets import _unknown_vr_dicom


@pytest.mark.filterwarnings("ignore")
def test_ingest_refuses_an_undecodable_patient_id_with_c210_and_stores_nothing(
        tmp_path: Path, engine: Engine) -> None:
    data = _unknown_vr_dicom()  # Patient ID with the VR "L0"
    ds = pydicom.dcmread(BytesIO(data))
    with pytest.raises(InstanceRefused, match=r"PatientID \(0010,0020\) cannot be decoded"
                       ) as info:
        ingest_dataset(tmp_path / "data", engine, ds, encoded=data)
    assert info.value.status == STATUS_DECODE_FAILED
    assert isinstance(info.value.__cause__, DicomElementError)
    assert not list((tmp_path / "data").rglob("*.dcm"))
    assert list_studies(engine) == []
