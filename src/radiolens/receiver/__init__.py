"""The DICOM receiver: a Storage SCP that stores radiographs and queues them for scoring.

Needs pydicom, pynetdicom and SQLAlchemy; never imports torch. The checks and the
storing live in :mod:`radiolens.receiver.ingest` (no pynetdicom), which HTTP uploads
call too.

Example:
    >>> from radiolens.receiver import DicomReceiver
    >>> receiver = DicomReceiver("data", port=11112)
    >>> receiver.start(block=True)  # doctest: +SKIP
"""

from __future__ import annotations

from radiolens.errors import InstanceRefused
from radiolens.receiver.ingest import (
    CR_IMAGE_STORAGE,
    DEFAULT_MAX_PIXELS,
    DEFAULT_SOP_CLASSES,
    DX_PRESENTATION_STORAGE,
    DX_PROCESSING_STORAGE,
    SECONDARY_CAPTURE_STORAGE,
    STATUS_CANNOT_UNDERSTAND,
    STATUS_DECODE_FAILED,
    STATUS_MISMATCH,
    STATUS_OUT_OF_RESOURCES,
    STATUS_PROCESSING_FAILED,
    STATUS_SUCCESS,
    check_radiograph,
    ingest_dataset,
    instance_meta,
)
from radiolens.receiver.scp import DicomReceiver

__all__ = [
    "CR_IMAGE_STORAGE",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_SOP_CLASSES",
    "DX_PRESENTATION_STORAGE",
    "DX_PROCESSING_STORAGE",
    "SECONDARY_CAPTURE_STORAGE",
    "STATUS_CANNOT_UNDERSTAND",
    "STATUS_DECODE_FAILED",
    "STATUS_MISMATCH",
    "STATUS_OUT_OF_RESOURCES",
    "STATUS_PROCESSING_FAILED",
    "STATUS_SUCCESS",
    "DicomReceiver",
    "InstanceRefused",
    "check_radiograph",
    "ingest_dataset",
    "instance_meta",
]
