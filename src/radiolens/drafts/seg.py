"""DICOM Segmentation of the lungs: the lung mask of one radiograph, in its study.

One BINARY segment "Lung" (SNOMED CT category 91723000 "Anatomical Structure", type
39607008 "Lung"), made by an automatic algorithm named after radiolens and the
segmentation model, on the pixel grid of the source image, which it references by SOP
Instance UID. Projection radiographs have no slice thickness, which highdicom's pixel
measures need, so their spacing and frame of reference are left out of the SEG: the mask
is tied to the source image itself, pixel for pixel.

Example:
    >>> seg = make_lung_seg(source_ds, mask, model_name="builtin:lungs")   # doctest: +SKIP
    >>> seg.save_as("lung_seg.dcm", enforce_file_format=True)               # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import PurePath

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radiolens import __version__
from radiolens.errors import DraftError

__all__ = ["LUNG_SEG_SERIES_DESCRIPTION", "make_lung_seg", "model_label"]

logger = logging.getLogger(__name__)

#: SeriesDescription of the lung segmentation series.
LUNG_SEG_SERIES_DESCRIPTION = "radiolens AI lung segmentation (not for diagnosis)"
#: Header elements of a projection radiograph that highdicom would turn into pixel
#: measures or plane positions (which need a slice thickness such an image lacks).
_VOLUME_KEYWORDS = frozenset({"PixelData", "PixelSpacing", "FrameOfReferenceUID",
                              "ImagePositionPatient", "ImageOrientationPatient"})


def model_label(model: str) -> str:
    """A short name of a segmentation model for DICOM (never a server path):
    ``builtin:lungs`` gives ``lungs``, ``/runs/seg-unet`` gives ``seg-unet``."""
    text = model.removeprefix("builtin:").rstrip("/\\")
    return (PurePath(text).name or text or "unknown")[:48]


def _header(source: pydicom.Dataset) -> pydicom.Dataset:
    """The source's header for highdicom, without pixels (and, for a projection
    radiograph, without spacing and frame of reference). The source is not changed."""
    drop = _VOLUME_KEYWORDS if "SliceThickness" not in source else {"PixelData"}
    header = pydicom.Dataset()
    for elem in source:
        if elem.keyword not in drop:
            header.add(elem)
    if hasattr(source, "file_meta"):
        header.file_meta = source.file_meta
    from radiolens.drafts.sr import _with_type2  # invalid dates emptied, as in the SR

    return _with_type2(header)


def make_lung_seg(source: pydicom.Dataset, mask: npt.ArrayLike, *, model_name: str,
                  model_version: str = "", series_number: int = 992) -> pydicom.Dataset:
    """Build a BINARY DICOM Segmentation with one "Lung" segment for ``source``.

    Args:
        source: the segmented radiograph (patient, study and reference come from it).
        mask: boolean lung mask of shape (Rows, Columns) of ``source``.
        model_name: the segmentation model (``builtin:lungs`` or a run directory); only
            its short name goes into the file.
        model_version: the radiolens version that trained it (default: this one).
        series_number: SeriesNumber of the new segmentation series.

    Raises:
        DraftError: the mask does not have the source's size, or highdicom refused it.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise DraftError(f"the lung mask must be 2-D, got shape {arr.shape}")
    shape = (int(source.get("Rows", 0)), int(source.get("Columns", 0)))
    if arr.shape != shape:
        raise DraftError(f"the lung mask is {arr.shape[0]}x{arr.shape[1]} but the image is "
                         f"{shape[0]}x{shape[1]} (Rows x Columns); segment the image as stored")
    label = model_label(model_name)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"radiolens lung segmentation ({label})"[:64],
        family=codes.cid7162.ArtificialIntelligence,
        version=(model_version or __version__)[:64], source="radiolens",
        parameters={"model": label})
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="Lung",
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=codes.SCT.Lung,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm)
    try:
        seg = hd.seg.Segmentation(
            source_images=[_header(source)], pixel_array=arr.astype(bool)[None],
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment], series_instance_uid=generate_uid(),
            series_number=series_number, sop_instance_uid=generate_uid(), instance_number=1,
            manufacturer="radiolens", manufacturer_model_name="radiolens lung segmentation",
            software_versions=f"radiolens {__version__}", device_serial_number=label,
            content_label="LUNGS", content_description="AI lung mask, not for diagnosis",
            transfer_syntax_uid=ExplicitVRLittleEndian, omit_empty_frames=False,
            series_description=LUNG_SEG_SERIES_DESCRIPTION)
    except (TypeError, ValueError, AttributeError) as exc:
        raise DraftError(f"cannot build the lung Segmentation: {exc}") from exc
    seg.SpecificCharacterSet = "ISO_IR 192"
    logger.info("built lung SEG %s for study %s", seg.SOPInstanceUID, seg.StudyInstanceUID)
    return seg
