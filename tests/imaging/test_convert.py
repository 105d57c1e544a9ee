"""Secondary Capture creation, atomic writing, and PNG to DICOM conversion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from radiolens.errors import ImageReadError, InputFormatError
from radiolens.imaging import png_to_dicom, read_image, to_secondary_capture, write_dicom_atomic

Factory = Callable[..., Path]


def _gradient(dtype: type, top: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    arr: np.ndarray = rng.integers(0, top + 1, (24, 40)).astype(dtype)
    arr[0, 0], arr[0, 1] = 0, top  # full range, so DICOM min-max scaling is the identity
    return arr


@pytest.mark.parametrize(("dtype", "top"), [(np.uint8, 255), (np.uint16, 65535)])
def test_roundtrip_integer(tmp_path: Path, dtype: type, top: int) -> None:
    arr = _gradient(dtype, top)
    path = write_dicom_atomic(to_secondary_capture(arr, patient_id="P1"), tmp_path / "x.dcm")
    img = read_image(path)
    assert img.bits == (8 if dtype is np.uint8 else 16)
    np.testing.assert_allclose(img.pixels, arr / top, atol=1e-6)


def test_roundtrip_float_within_quantisation(tmp_path: Path) -> None:
    arr = np.random.default_rng(2).random((16, 16)).astype(np.float32)
    arr[0, 0], arr[0, 1] = 0.0, 1.0
    path = write_dicom_atomic(to_secondary_capture(arr, patient_id="P1"), tmp_path / "f.dcm")
    np.testing.assert_allclose(read_image(path).pixels, arr, atol=0.5 / 255 + 1e-6)


def test_dataset_is_a_valid_secondary_capture(tmp_path: Path) -> None:
    ds = to_secondary_capture(
        np.zeros((8, 8), np.uint8), patient_id="P1", patient_name="Doe^Jane",
        patient_sex="f", patient_age="45", accession_number="ACC1",
        study_description="Chest", series_description="PA view", view_position="pa",
        study_instance_uid="1.2.3.4")
    path = write_dicom_atomic(ds, tmp_path / "deep" / "sc.dcm")
    assert not list(path.parent.glob("*.partial"))
    back = pydicom.dcmread(path)
    assert path.read_bytes()[128:132] == b"DICM"
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.file_meta.MediaStorageSOPClassUID == SecondaryCaptureImageStorage
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert back.SOPClassUID == SecondaryCaptureImageStorage
    assert back.PhotometricInterpretation == "MONOCHROME2"
    assert (back.PatientID, str(back.PatientName), back.PatientSex, back.PatientAge) == (
        "P1", "Doe^Jane", "F", "045Y")
    assert back.StudyInstanceUID == "1.2.3.4" and back.ViewPosition == "PA"
    assert back.Modality == "DX" and back.ConversionType == "WSD"
    assert len(back.StudyDate) == 8 and back.SeriesDate == back.StudyDate
    assert back.pixel_array.shape == (8, 8)
    meta = read_image(path).meta
    assert meta["ViewPosition"] == "PA" and meta["PatientAge"] == "045Y"


def test_fresh_uids_each_time() -> None:
    a = to_secondary_capture(np.zeros((2, 2), np.uint8), patient_id="P")
    b = to_secondary_capture(np.zeros((2, 2), np.uint8), patient_id="P")
    uids = {a.SOPInstanceUID, b.SOPInstanceUID, a.SeriesInstanceUID, b.SeriesInstanceUID,
            a.StudyInstanceUID, b.StudyInstanceUID}
    assert len(uids) == 6


@pytest.mark.parametrize(
    ("pixels", "kwargs", "match"),
    [
        (np.zeros((2, 2, 3), np.uint8), {}, "2-D"),
        (np.full((2, 2), 1.5), {}, r"\[0, 1\]"),
        (np.full((2, 2), np.nan), {}, "NaN"),
        (np.zeros((2, 2), np.int32), {}, "dtype int32"),
        (np.zeros((2, 2), np.uint8), {"patient_sex": "X"}, "patient_sex"),
        (np.zeros((2, 2), np.uint8), {"patient_age": "old"}, "patient_age"),
        (np.zeros((2, 2), np.uint8), {"accession_number": "A" * 17}, "accession_number"),
    ],
)
def test_bad_inputs(pixels: np.ndarray, kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(InputFormatError, match=match):
        to_secondary_capture(pixels, patient_id="P", **kwargs)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    ds = to_secondary_capture(np.zeros((2, 2), np.uint8), patient_id="P")
    del ds.file_meta.TransferSyntaxUID
    with pytest.raises(Exception):  # noqa: B017 - whatever pydicom raises
        write_dicom_atomic(ds, tmp_path / "bad.dcm")
    assert list(tmp_path.iterdir()) == []


def test_png_to_dicom_8_and_16_bit(tmp_path: Path, png_file: Factory) -> None:
    arr8 = _gradient(np.uint8, 255)
    out = png_to_dicom(png_file("a.png", arr8), tmp_path / "a.dcm", patient_id="P8")
    ds = pydicom.dcmread(out)
    assert ds.BitsStored == 8 and np.array_equal(ds.pixel_array, arr8)
    assert np.array_equal(read_image(out).pixels, read_image(tmp_path / "a.png").pixels)

    arr16 = _gradient(np.uint16, 4000)
    out16 = png_to_dicom(png_file("b.png", arr16), tmp_path / "b.dcm", patient_id="P16")
    ds16 = pydicom.dcmread(out16)
    assert ds16.BitsStored == 16 and np.array_equal(ds16.pixel_array, arr16)
    np.testing.assert_allclose(read_image(out16).pixels, read_image(tmp_path / "b.png").pixels,
                               atol=1e-6)


def test_png_to_dicom_rejects_dicom(tmp_path: Path, dicom_file: Factory) -> None:
    with pytest.raises(ImageReadError, match="not PNG or JPEG"):
        png_to_dicom(dicom_file("x.dcm"), tmp_path / "y.dcm", patient_id="P")
