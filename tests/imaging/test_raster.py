"""PNG and JPEG reading: bit depths, colour, transparency, palette, and corrupt files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radiolens.errors import ImageReadError
from radiolens.imaging import detect_format, load_grey_array, read_image

from .conftest import truncate

Factory = Callable[..., Path]
RAMP8 = np.tile(np.arange(256, dtype=np.uint8), (4, 1))


def test_8bit_grey_divides_by_255(png_file: Factory) -> None:
    img = read_image(png_file("g.png", RAMP8[:, 10:200]))
    assert (img.source_format, img.bits, img.meta["mode"]) == ("png", 8, "L")
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (4, 190)
    np.testing.assert_allclose(img.pixels, RAMP8[:, 10:200] / 255.0, atol=1e-7)


def test_16bit_png_is_minmax_scaled(png_file: Factory) -> None:
    arr = np.tile(np.linspace(1000, 3000, 50).astype(np.uint16), (3, 1))
    path = png_file("deep.png", arr)
    img = read_image(path)
    assert img.bits == 16 and img.meta["mode"].startswith("I")
    np.testing.assert_allclose(img.pixels, (arr - 1000) / 2000.0, atol=1e-6)
    raw, _ = load_grey_array(path)
    assert raw.dtype == np.uint16 and np.array_equal(raw, arr)


def test_rgb_uses_luma(png_file: Factory) -> None:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    rgb[1] = 200
    img = read_image(png_file("rgb.png", rgb))
    expected = np.rint([0.299 * 255, 0.587 * 255, 0.114 * 255]) / 255.0
    np.testing.assert_allclose(img.pixels[0], expected, atol=1e-6)
    np.testing.assert_allclose(img.pixels[1], 200 / 255.0, atol=1e-6)


def test_rgba_is_composited_onto_black(png_file: Factory) -> None:
    rgba = np.full((2, 2, 4), 255, np.uint8)
    rgba[0, 0, 3] = 0
    rgba[0, 1, 3] = 128
    img = read_image(png_file("a.png", rgba))
    assert img.meta["mode"] == "RGBA"
    assert img.pixels[0, 0] == 0.0
    assert abs(img.pixels[0, 1] - 128 / 255.0) < 1 / 255.0
    assert img.pixels[1, 1] == 1.0


def test_grey_alpha(png_file: Factory) -> None:
    la = np.zeros((2, 2, 2), np.uint8)
    la[..., 0] = 255
    la[..., 1] = [[0, 255], [255, 255]]
    img = read_image(png_file("la.png", la, mode="LA"))
    assert img.pixels[0, 0] == 0.0 and img.pixels[0, 1] == 1.0


def test_palette(tmp_path: Path) -> None:
    pal = Image.new("P", (4, 1))
    pal.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0] + [0] * (256 * 3 - 9))
    pal.putdata([0, 1, 2, 1])
    path = tmp_path / "pal.png"
    pal.save(path)
    img = read_image(path)
    assert img.meta["mode"] == "P"
    np.testing.assert_allclose(img.pixels[0], [0, 1, round(0.299 * 255) / 255, 1], atol=1e-6)


def test_palette_with_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 255, 255, 255, 255, 255] + [0] * (256 * 3 - 6))
    pal.putdata([0, 1])
    path = tmp_path / "tpal.png"
    pal.save(path, transparency=0)
    img = read_image(path)
    np.testing.assert_allclose(img.pixels[0], [0.0, 1.0])


def test_jpeg(tmp_path: Path) -> None:
    arr = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
    path = tmp_path / "x.jpg"
    Image.fromarray(arr).save(path, quality=95)
    img = read_image(path)
    assert (img.source_format, img.bits) == ("jpeg", 8)
    assert np.abs(img.pixels - arr / 255.0).mean() < 0.02


@pytest.mark.parametrize(("orientation", "turn"), [(1, 0), (6, -1), (8, 1), (3, 2)])
def test_jpeg_exif_orientation_is_applied(tmp_path: Path, orientation: int,
                                          turn: int) -> None:
    # stored 40 wide x 24 high, bright on the left: a viewer turns it by the EXIF tag
    arr = np.zeros((24, 40), dtype=np.uint8)
    arr[:, :10] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(arr).save(path, quality=95, exif=exif)
    shown = np.rot90(arr, turn)  # orientation 6: 90 degrees clockwise, 8: anticlockwise
    img = read_image(path)
    assert img.pixels.shape == shown.shape
    assert np.abs(img.pixels - shown / 255.0).mean() < 0.02


def test_colour_jpeg_content_with_png_name(tmp_path: Path) -> None:
    path = tmp_path / "actually_jpeg.png"
    Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(path, format="JPEG")
    assert detect_format(path) == ("jpeg", False)
    assert abs(float(read_image(path).pixels.mean()) - 100 / 255) < 0.02


@pytest.mark.parametrize("name", ["cut.png", "cut.jpg"])
def test_truncated_raster_names_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    truncate(path, 0.5)
    with pytest.raises(ImageReadError, match=rf"{name.replace('.', '[.]')}.*truncated or corrupt"):
        read_image(path)


def test_signature_then_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ImageReadError, match=r"bad\.png"):
        read_image(path)


def test_text_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(ImageReadError, match=r"notes\.png.*not a PNG"):
        read_image(path)


def test_missing_and_empty_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(OSError):  # ImageReadError is also an OSError
        read_image(tmp_path / "nope.png")
