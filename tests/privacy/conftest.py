"""Synthetic DICOM files with known identifiers, written to ``tmp_path``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

#: Identifying values that must not survive de-identification, anywhere in the output.
NAME = "Quixotewright^Philomena"
PATIENT_ID = "MRN-7730291"
BIRTH_DATE = "19450317"
ACCESSION = "ACC88231977"
STUDY_UID = "1.2.826.0.1.3680043.8.498.11111111111111"
SERIES_UIDS = ("1.2.826.0.1.3680043.8.498.22222222222221",
               "1.2.826.0.1.3680043.8.498.22222222222222")
SOP_UIDS = ("1.2.826.0.1.3680043.8.498.33333333333331",
            "1.2.826.0.1.3680043.8.498.33333333333332")
SECRETS = (NAME, "Quixotewright", "Philomena", PATIENT_ID, BIRTH_DATE, ACCESSION, STUDY_UID,
           *SERIES_UIDS, *SOP_UIDS)

tesseract_missing = shutil.which("tesseract") is None


def grey_pixels(text: str | None = None, size: tuple[int, int] = (512, 384)) -> np.ndarray:
    """A smooth grey image; with ``text``, the text drawn large in black near the top."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = (110 + 30 * np.sin(xx / 60.0) * np.cos(yy / 80.0)).astype(np.uint8)
    img = Image.fromarray(base, mode="L")
    if text:
        draw = ImageDraw.Draw(img)
        draw.text((20, 20), text, fill=0, font=ImageFont.load_default(size=48))
    return np.asarray(img)


def make_dataset(sop_index: int = 0, pixels: np.ndarray | None = None, *,
                 patient_id: str = PATIENT_ID, name: str = NAME,
                 burned_in: str | None = "NO") -> Dataset:
    """A Secondary Capture image of the known patient (instance ``sop_index``)."""
    arr = grey_pixels() if pixels is None else pixels
    sop_uid = SOP_UIDS[sop_index] if patient_id == PATIENT_ID else SOP_UIDS[sop_index] + "9"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "QUIXOTEWRIGHT"
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = STUDY_UID if patient_id == PATIENT_ID else STUDY_UID + "9"
    ds.SeriesInstanceUID = SERIES_UIDS[sop_index]
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "F"
    ds.AccessionNumber = ACCESSION
    ds.StudyDate = "20240105"
    ds.StudyTime = "101500"
    ds.StudyID = "S1"
    ds.ReferringPhysicianName = "Zebulon^Hartigan"
    ds.InstitutionName = "St Quixotewright Hospital"
    ds.StudyDescription = f"Chest PA for {name.replace('^', ' ')}"
    ds.ImageComments = f"patient {PATIENT_ID} born {BIRTH_DATE}"
    ds.Modality = "DX"
    ds.ConversionType = "WSD"
    ds.InstanceNumber = sop_index + 1
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    block = ds.private_block(0x0099, "ACME HOSPITAL", create=True)
    block.add_new(0x01, "LO", f"{NAME} {PATIENT_ID}")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    return ds


@pytest.fixture
def patient_folder(tmp_path: Path) -> Path:
    """Two images of one patient and a non-DICOM file, in ``tmp_path/in``."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    make_dataset(0).save_as(folder / f"{NAME}_1.dcm", enforce_file_format=True)
    make_dataset(1).save_as(folder / "sub" / "image2", enforce_file_format=True)
    (folder / "notes.txt").write_text(f"{NAME} {PATIENT_ID}\n", encoding="utf-8")
    return folder
