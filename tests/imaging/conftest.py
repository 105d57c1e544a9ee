"""Synthetic DICOM, PNG and JPEG fixtures, generated in ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

#: A 12-bit horizontal ramp: column j holds j * 4095 / 63 (rounded), every row the same.
RAMP12 = np.tile(np.rint(np.linspace(0, 4095, 64)).astype(np.uint16), (32, 1))


def make_dicom_dataset(
    pixels: np.ndarray | None = RAMP12,
    *,
    photometric: str = "MONOCHROME2",
    bits_allocated: int = 16,
    bits_stored: int = 12,
    signed: bool = False,
    samples: int = 1,
    frames: int = 1,
    transfer_syntax: str = ExplicitVRLittleEndian,
    **elements: Any,
) -> Dataset:
    """A minimal image dataset; ``elements`` are set as DICOM keywords."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "PAT-1"
    ds.Modality = "CR"
    ds.ViewPosition = "PA"
    ds.PixelSpacing = [0.2, 0.15]
    if pixels is not None:
        arr = np.asarray(pixels)
        ds.SamplesPerPixel = samples
        ds.PhotometricInterpretation = photometric
        ds.Rows, ds.Columns = arr.shape[-3 if samples > 1 else -2], arr.shape[-2 if samples > 1
                                                                               else -1]
        if samples > 1:
            ds.PlanarConfiguration = 0
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.BitsAllocated = bits_allocated
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 1 if signed else 0
        dtype = f"<{'i' if signed else 'u'}{bits_allocated // 8}"
        ds.PixelData = np.ascontiguousarray(arr, dtype=dtype).tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path, *, preamble: bool = True) -> Path:
    """Write ``ds``; without ``preamble`` the file lacks the DICM marker and file meta."""
    if preamble:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:
        body = Dataset()
        body.update(ds)
        pydicom.dcmwrite(path, body, implicit_vr=False, little_endian=True)
    return path


@pytest.fixture
def dicom_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``dicom_file(name, pixels=..., preamble=True, **kwargs)`` -> path."""

    def make(name: str = "image.dcm", *args: Any, preamble: bool = True, **kwargs: Any) -> Path:
        return save(make_dicom_dataset(*args, **kwargs), tmp_path / name, preamble=preamble)

    return make


@pytest.fixture
def png_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``png_file(name, array, mode=None)`` -> path of a PNG written by Pillow."""

    def make(name: str, array: np.ndarray, mode: str | None = None) -> Path:
        path = tmp_path / name
        img = Image.fromarray(array) if mode is None else Image.fromarray(array, mode=mode)
        img.save(path)
        return path

    return make


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to a fraction of its size, in place."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def voi_lut_item(n: int = 4096, first: int = 0, bits: int = 16) -> Dataset:
    """A VOI LUT that inverts a 12-bit ramp (so its use is visible in the output)."""
    item = Dataset()
    item.LUTDescriptor = [n, first, bits]
    item.add_new("LUTData", "OW", np.arange(n - 1, -1, -1, dtype="<u2").tobytes())
    return item


def voi_lut_sequence() -> Sequence:
    """A one-item VOI LUT Sequence."""
    return Sequence([voi_lut_item()])
