"""The one radiograph check, the pixel cap (checked before decoding) and clear refusals."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile

from radiolens.errors import ImageReadError
from radiolens.imaging import (
    DEFAULT_MAX_PIXELS,
    check_radiograph,
    load_grey_array,
    read_image,
    write_dicom_atomic,
)

from .conftest import make_dicom_dataset, save

Factory = Callable[..., Path]


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares ``width x height`` (only a few rows of data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if Pillow or pydicom decodes pixels."""

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(boom))


def test_default_cap_fits_chest_radiographs() -> None:
    assert 4300 * 4300 < DEFAULT_MAX_PIXELS < 12000 * 12000
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= DEFAULT_MAX_PIXELS


def test_check_radiograph_passes_a_good_dataset_and_names_each_fault() -> None:
    assert check_radiograph(make_dicom_dataset()) is None
    empty = make_dicom_dataset()
    empty.PixelData = b""
    big = make_dicom_dataset(Rows=13000, Columns=13000)
    cases = {
        "pixel data is empty": empty,
        "exceeds": big,
        "multi-frame": make_dicom_dataset(np.zeros((2, 8, 8), np.uint16), frames=2),
        "not greyscale": make_dicom_dataset(photometric="RGB"),
        "no pixel data": make_dicom_dataset(None),
    }
    kinds = {"pixel data is empty": "invalid", "exceeds": "too-large",
             "multi-frame": "unsupported", "not greyscale": "unsupported",
             "no pixel data": "invalid"}
    for needle, ds in cases.items():
        refusal = check_radiograph(ds)
        assert refusal is not None and needle in refusal.reason, (needle, refusal)
        assert refusal.kind == kinds[needle]
        assert len(refusal.reason) <= 64  # fits a DICOM ErrorComment
    assert check_radiograph(make_dicom_dataset(), max_pixels=100) is not None


def test_dicom_over_the_cap_is_refused_before_decoding(tmp_path: Path,
                                                       no_decoding: None) -> None:
    # the header says 12000 x 12000: refused from the header, whatever follows
    ds = make_dicom_dataset(Rows=12000, Columns=12000)
    path = save(ds, tmp_path / "huge.dcm")
    with pytest.raises(ImageReadError, match=r"huge\.dcm.*12000x12000.*exceeds.*MP limit"):
        read_image(path)


def test_deflated_dicom_over_a_lowered_cap(tmp_path: Path, no_decoding: None) -> None:
    ds = make_dicom_dataset(np.zeros((300, 300), np.uint16),
                            transfer_syntax=pydicom.uid.DeflatedExplicitVRLittleEndian)
    path = tmp_path / "deflated.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    with pytest.raises(ImageReadError, match="exceeds"):
        read_image(path, max_pixels=300 * 299)


def test_png_over_the_cap_is_refused_before_decoding(tmp_path: Path,
                                                     no_decoding: None) -> None:
    data = png_declaring(13000, 13000)
    assert len(data) < 200_000
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ImageReadError, match=r"bomb\.png: image exceeds the 36\.0 MP limit"):
        read_image(path)
    big = tmp_path / "big.png"  # over the cap, under Pillow's backstop: our own message
    big.write_bytes(png_declaring(7000, 7000))
    with pytest.raises(ImageReadError, match=r"big\.png: image 7000x7000 \(49\.0 MP\) exceeds"):
        read_image(big)
    with pytest.raises(ImageReadError, match=r"^PNG: .*exceeds"):
        load_grey_array(BytesIO(data), name="PNG")


def test_png_cap_is_a_parameter(png_file: Factory) -> None:
    path = png_file("small.png", np.zeros((100, 100), np.uint8))
    assert read_image(path).pixels.shape == (100, 100)
    with pytest.raises(ImageReadError, match="exceeds"):
        read_image(path, max_pixels=99 * 100)


def test_empty_pixel_data_is_a_clear_error(tmp_path: Path) -> None:
    ds = make_dicom_dataset()
    ds.PixelData = b""
    path = save(ds, tmp_path / "empty.dcm")
    with pytest.raises(ImageReadError, match=r"empty\.dcm: DICOM pixel data is empty") as info:
        read_image(path)
    assert "NoneType" not in str(info.value)


def test_write_dicom_atomic_leaves_no_partial_file(tmp_path: Path) -> None:
    out = write_dicom_atomic(make_dicom_dataset(), tmp_path / "a" / "x.dcm")
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["x.dcm"]
    assert pydicom.dcmread(out).Rows == 32
