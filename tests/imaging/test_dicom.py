"""DICOM reading: grey-scale pipeline, metadata, and the errors for what is unsupported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import HTJ2K, JPEGLosslessSV1, RLELossless

from radiolens.errors import ImageReadError
from radiolens.imaging import read_image

from .conftest import RAMP12, make_dicom_dataset, save, truncate, voi_lut_sequence

Factory = Callable[..., Path]


def test_monochrome2_ramp_is_minmax_scaled(dicom_file: Factory) -> None:
    img = read_image(dicom_file())
    assert img.source_format == "dicom"
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (32, 64)
    assert img.pixels.min() == 0.0 and img.pixels.max() == 1.0
    np.testing.assert_allclose(img.pixels[0], RAMP12[0] / 4095.0, atol=1e-6)
    assert img.bits == 12


def test_meta_fields(dicom_file: Factory) -> None:
    img = read_image(dicom_file())
    meta = img.meta
    assert meta["PatientID"] == "PAT-1"
    assert meta["Modality"] == "CR" and meta["ViewPosition"] == "PA"
    assert meta["PhotometricInterpretation"] == "MONOCHROME2"
    assert meta["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    assert meta["PixelSpacing"] == (0.2, 0.15)
    assert "ImagerPixelSpacing" not in meta
    assert meta["PatientSex"] is None and meta["PatientAge"] is None
    assert meta["VOI"] is None
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        assert isinstance(meta[key], str)


def test_monochrome1_is_inverted(dicom_file: Factory) -> None:
    img = read_image(dicom_file(photometric="MONOCHROME1"))
    assert img.meta["PhotometricInterpretation"] == "MONOCHROME1"
    np.testing.assert_allclose(img.pixels[0], 1.0 - RAMP12[0] / 4095.0, atol=1e-6)


def test_rescale_is_applied_before_the_window(dicom_file: Factory) -> None:
    # Stored 0..4095, HU = stored - 1024; a window centred on 0 HU, 400 wide.
    path = dicom_file(RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=0,
                      WindowWidth=400)
    img = read_image(path)
    assert img.meta["VOI"] == "window"
    row = img.pixels[0]
    stored = RAMP12[0].astype(float)
    hu = stored - 1024
    assert np.all(row[hu < -210] == 0.0) and np.all(row[hu > 210] == 1.0)
    mid = int(np.argmin(np.abs(hu)))
    assert abs(row[mid] - 0.5) < 0.1


def test_window_only(dicom_file: Factory) -> None:
    img = read_image(dicom_file(WindowCenter=1000, WindowWidth=500))
    row, stored = img.pixels[0], RAMP12[0]
    assert np.all(row[stored < 740] == 0.0) and np.all(row[stored > 1260] == 1.0)
    assert np.all(np.diff(row) >= 0)


def test_first_of_several_windows_is_used(dicom_file: Factory) -> None:
    img = read_image(dicom_file(WindowCenter=[1000, 3000], WindowWidth=[500, 100]))
    row, stored = img.pixels[0], RAMP12[0]
    assert np.all(row[stored < 740] == 0.0) and np.all(row[stored > 1260] == 1.0)


def test_voi_lut_sequence_is_preferred(dicom_file: Factory) -> None:
    img = read_image(dicom_file(VOILUTSequence=voi_lut_sequence(), WindowCenter=1000,
                                WindowWidth=500))
    assert img.meta["VOI"] == "lut"
    # The LUT inverts the ramp.
    np.testing.assert_allclose(img.pixels[0], 1.0 - RAMP12[0] / 4095.0, atol=1e-4)


def test_bits_stored_masks_garbage_in_high_bits(dicom_file: Factory) -> None:
    dirty = RAMP12 | np.uint16(0xF000)
    img = read_image(dicom_file("dirty.dcm", dirty))
    np.testing.assert_allclose(img.pixels[0], RAMP12[0] / 4095.0, atol=1e-6)


def test_signed_pixels(dicom_file: Factory) -> None:
    signed = (RAMP12.astype(np.int16) - 2048)
    img = read_image(dicom_file("signed.dcm", signed, signed=True))
    np.testing.assert_allclose(img.pixels[0], RAMP12[0] / 4095.0, atol=1e-6)


def test_eight_bit(dicom_file: Factory) -> None:
    arr = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))
    img = read_image(dicom_file("eight.dcm", arr, bits_allocated=8, bits_stored=8))
    assert img.bits == 8
    np.testing.assert_allclose(img.pixels[0], arr[0] / 252.0, atol=1e-6)


def test_constant_image_reads_as_zeros(dicom_file: Factory) -> None:
    img = read_image(dicom_file("flat.dcm", np.full((8, 8), 7, np.uint16),
                                photometric="MONOCHROME1"))
    assert np.all(img.pixels == 0.0)


def test_file_without_preamble(dicom_file: Factory, tmp_path: Path) -> None:
    path = dicom_file("nopreamble.dcm", preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    img = read_image(path)
    np.testing.assert_allclose(img.pixels[0], RAMP12[0] / 4095.0, atol=1e-6)
    # Also with no suffix at all.
    bare = tmp_path / "1.2.3.4"
    bare.write_bytes(path.read_bytes())
    assert read_image(bare).source_format == "dicom"


def test_no_pixel_data(dicom_file: Factory) -> None:
    path = dicom_file("sr.dcm", None)
    with pytest.raises(ImageReadError, match=r"sr\.dcm.*no pixel data"):
        read_image(path)


def test_multi_frame(dicom_file: Factory) -> None:
    frames = np.stack([RAMP12, RAMP12])
    path = dicom_file("multi.dcm", frames, frames=2)
    with pytest.raises(ImageReadError, match=r"multi\.dcm.*multi-frame.*2 frames"):
        read_image(path)


def test_rgb(dicom_file: Factory) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    path = dicom_file("rgb.dcm", rgb, photometric="RGB", samples=3, bits_allocated=8,
                      bits_stored=8)
    with pytest.raises(ImageReadError, match=r"rgb\.dcm.*colour DICOM.*SamplesPerPixel=3"):
        read_image(path)


def test_palette_colour_is_rejected(dicom_file: Factory) -> None:
    path = dicom_file("pal.dcm", photometric="PALETTE COLOR")
    with pytest.raises(ImageReadError, match=r"pal\.dcm.*PALETTE COLOR"):
        read_image(path)


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated(dicom_file: Factory, keep: float) -> None:
    path = truncate(dicom_file("cut.dcm"), keep)
    with pytest.raises(ImageReadError, match=r"cut\.dcm.*truncated"):
        read_image(path)


def test_not_dicom_with_dcm_suffix(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("this is not an image\n" * 20)
    with pytest.raises(ImageReadError, match=r"notes\.dcm"):
        read_image(path)


def test_compressed_without_decoder(tmp_path: Path) -> None:
    tsyntax = next((t for t in (JPEGLosslessSV1, HTJ2K)
                    if not get_decoder(t).is_available), None)
    if tsyntax is None:
        pytest.skip("every tested compressed transfer syntax has a decoder installed")
    ds = make_dicom_dataset(transfer_syntax=tsyntax)
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds_path = save(ds, tmp_path / "jls.dcm")
    with pytest.raises(ImageReadError, match=r"jls\.dcm.*no decoder.*pip install"):
        read_image(ds_path)


def test_corrupt_compressed_pixel_data(tmp_path: Path) -> None:
    ds = make_dicom_dataset(transfer_syntax=RLELossless)
    ds.PixelData = encapsulate([b"\x00" * 16])
    path = save(ds, tmp_path / "rle.dcm")
    with pytest.raises(ImageReadError, match=r"rle\.dcm.*cannot decode the pixel data"):
        read_image(path)
