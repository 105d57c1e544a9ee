"""Read radiographs (DICOM, PNG, JPEG) into [0, 1] greyscale arrays, and write DICOM.

Needs the ``dicom`` extra (numpy, Pillow, pydicom); imports no torch.

Example:
    >>> from radiolens.imaging import read_image, scan_images
    >>> img = read_image("chest.dcm")          # doctest: +SKIP
    >>> scan_images("incoming/").raise_if_errors()  # doctest: +SKIP
"""

from __future__ import annotations

from radiolens.imaging.checks import DEFAULT_MAX_PIXELS, Refusal, check_radiograph
from radiolens.imaging.convert import png_to_dicom, to_secondary_capture, write_dicom_atomic
from radiolens.imaging.dicom import dicom_meta, read_dicom
from radiolens.imaging.gate import GateLimits, assess_image, assess_xray
from radiolens.imaging.image import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    XrayImage,
    detect_format,
    has_dicom_preamble,
    read_image,
)
from radiolens.imaging.raster import load_grey_array, read_raster
from radiolens.imaging.scan import ScanReport, iter_image_files, scan_images

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DICOM_SUFFIXES",
    "IMAGE_SUFFIXES",
    "GateLimits",
    "Refusal",
    "ScanReport",
    "XrayImage",
    "assess_image",
    "assess_xray",
    "check_radiograph",
    "detect_format",
    "dicom_meta",
    "has_dicom_preamble",
    "iter_image_files",
    "load_grey_array",
    "png_to_dicom",
    "read_dicom",
    "read_image",
    "read_raster",
    "scan_images",
    "to_secondary_capture",
    "write_dicom_atomic",
]
