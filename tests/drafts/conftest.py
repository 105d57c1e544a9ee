"""Fixtures for the drafts tests: study results and a synthetic DX image."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from radiolens.drafts import FindingScore, StudyResult

STUDY_UID = "1.2.826.0.1.3680043.8.498.1001"
SCORED_AT = datetime(2024, 1, 2, 10, 30, tzinfo=UTC)


def make_result(*findings: FindingScore, **overrides: Any) -> StudyResult:
    """A StudyResult for patient P001 in study STUDY_UID."""
    fields: dict[str, Any] = {
        "study_instance_uid": STUDY_UID,
        "patient_id": "P001",
        "patient_name": "Doe^Jane",
        "patient_sex": "F",
        "patient_birth_date": "19700101",
        "accession_number": "ACC001",
        "study_date": "20240102",
        "study_description": "XR Chest PA",
        "model_name": "densenet121-cxr14",
        "model_version": "1.2.0",
        "findings": findings,
        "scored_at": SCORED_AT,
    }
    fields.update(overrides)
    return StudyResult(**fields)


@pytest.fixture()
def result_factory() -> Callable[..., StudyResult]:
    return make_result


@pytest.fixture()
def mixed_result() -> StudyResult:
    """Two flagged findings (different urgency) and two negatives."""
    return make_result(
        FindingScore("Pneumonia", 0.87, 0.5, True, urgency=2),
        FindingScore("Pneumothorax", 0.55, 0.5, True, urgency=3),
        FindingScore("Pleural_Thickening", 0.2, 0.4, False),
        FindingScore("Effusion", 0.1, 0.5, False),
    )


@pytest.fixture()
def dx_source() -> Any:
    """A 64x64 MONOCHROME2 DX image of study STUDY_UID, patient P001."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX For Presentation
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["dx_source"])
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["dx_series"])
    ds.Modality = "DX"
    ds.PatientID = "P001"
    ds.PatientName = "Doe^Jane"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101000"
    ds.AccessionNumber = "ACC001"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.PatientOrientation = ["L", "F"]
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(64 * 64, dtype=np.uint16) % 4096).reshape(64, 64).tobytes()
    return ds
