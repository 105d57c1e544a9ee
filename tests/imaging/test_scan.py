"""Finding image files in folders and reporting every unreadable one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from radiolens.errors import ImageReadError
from radiolens.imaging import ScanReport, iter_image_files, scan_images

from .conftest import truncate

Factory = Callable[..., Path]


@pytest.fixture
def folder(tmp_path: Path, png_file: Factory, dicom_file: Factory) -> Path:
    png_file("a.png", np.zeros((4, 4), np.uint8))
    sub = tmp_path / "sub"
    sub.mkdir()
    dicom_file("sub/b.dcm")
    dicom_file("sub/1.2.840.99")            # DICOM named by UID, with DICM marker
    dicom_file("sub/noext")                 # DICOM with no suffix
    truncate(png_file("sub/broken.png", np.zeros((32, 32), np.uint8)), 0.3)
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / "plain").write_text("no suffix, no DICM marker")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "c.png.partial").write_bytes(b"x")
    return tmp_path


def test_iter_image_files_recursive(folder: Path) -> None:
    names = [p.name for p in iter_image_files(folder)]
    assert names == ["a.png", "1.2.840.99", "b.dcm", "broken.png", "noext"]


def test_iter_image_files_flat_and_explicit(folder: Path) -> None:
    assert [p.name for p in iter_image_files([folder], recursive=False)] == ["a.png"]
    # An explicitly named file is yielded whatever its name; duplicates once.
    files = list(iter_image_files([folder / "readme.txt", folder / "a.png", str(folder)],
                                  recursive=False))
    assert [p.name for p in files] == ["readme.txt", "a.png"]


def test_iter_image_files_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        list(iter_image_files(tmp_path / "missing"))


def test_scan_reports_all_errors(folder: Path) -> None:
    report = scan_images([folder, folder / "gone.png"])
    assert isinstance(report, ScanReport)
    assert sorted(p.name for p in report.readable) == ["1.2.840.99", "a.png", "b.dcm",
                                                       "noext"]
    assert [p.name for p, _ in report.errors] == ["broken.png", "gone.png"]
    assert report.n_files == 6 and not report.ok
    with pytest.raises(ImageReadError) as info:
        report.raise_if_errors()
    message = str(info.value)
    assert "2 of 6" in message and "broken.png" in message and "gone.png" in message


def test_scan_clean_folder(tmp_path: Path, png_file: Factory) -> None:
    png_file("ok.png", np.zeros((4, 4), np.uint8))
    report = scan_images(str(tmp_path))
    assert report.ok and report.n_files == 1
    report.raise_if_errors()
