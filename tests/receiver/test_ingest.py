"""The ingest path refuses a dataset with an element pydicom cannot decode (0xC210)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import Engine

from radiolens.errors import DicomElementError, InstanceRefused
from radiolens.receiver import STATUS_DECODE_FAILED, ingest_dataset
from radiolens.worklist import list_studies
from tests.fuzz.test_fuzz_targets import _unknown_vr_dicom

from ..dicomnet.synthetic import make_dataset


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


def _encoded(ds: pydicom.Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_resend_repairs_a_file_cut_short_and_keeps_an_intact_one(
        tmp_path: Path, engine: Engine) -> None:
    data = _encoded(make_dataset(seed="repair"))
    ds = pydicom.dcmread(BytesIO(data))
    with ThreadPoolExecutor(1) as file_sync:
        def ingest(sent: bytes) -> tuple[str, bool]:
            return ingest_dataset(tmp_path, engine, pydicom.dcmread(BytesIO(sent)),
                                  encoded=sent, file_sync=file_sync)

        study_uid, created = ingest(data)
        assert created
        (stored,) = (tmp_path / "dicom" / study_uid).iterdir()
        assert stored.read_bytes() == data
        inode = stored.stat().st_ino
        # the sender resends an instance already stored whole: the file is left alone
        assert ingest(data) == (study_uid, False)
        assert stored.stat().st_ino == inode
        # a resend with other bytes (a corrected header) keeps the copy results came from
        changed = pydicom.dcmread(BytesIO(data))
        changed.PatientName = "Corrected^Name^Longer"
        assert ingest(_encoded(changed)) == (study_uid, False)
        assert stored.read_bytes() == data
        # a crash before the fsync cut the file short (its sender was never answered)
        stored.write_bytes(data[: len(data) // 2])
        assert ingest(data) == (study_uid, False)
        assert stored.read_bytes() == data
        # ... or left zeros of the right size: not DICOM, repaired too
        stored.write_bytes(bytes(len(data)))
        assert ingest(data) == (study_uid, False)
        assert stored.read_bytes() == data
    assert len(list_studies(engine)) == 1
    assert ds.SOPInstanceUID == pydicom.dcmread(stored).SOPInstanceUID


def test_a_file_stored_but_never_recorded_takes_the_bytes_sent_again(
        tmp_path: Path, engine: Engine) -> None:
    data = _encoded(make_dataset(seed="unrecorded"))
    ds = pydicom.dcmread(BytesIO(data))
    dest = tmp_path / "dicom" / str(ds.StudyInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(data[:1000])  # the receiver stopped before recording its row
    assert ingest_dataset(tmp_path, engine, ds, encoded=data)[1]
    assert dest.read_bytes() == data
