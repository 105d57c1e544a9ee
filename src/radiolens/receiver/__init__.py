"""The DICOM receiver: a Storage SCP that stores radiographs and queues them for scoring.

Needs pydicom, pynetdicom and SQLAlchemy; never imports torch.

Example:
    >>> from radiolens.receiver import DicomReceiver
    >>> receiver = DicomReceiver("data", port=11112)
    >>> receiver.start(block=True)  # doctest: +SKIP
"""

from __future__ import annotations

from radiolens.receiver.scp import (
    CR_IMAGE_STORAGE,
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
    DicomReceiver,
    InstanceRefused,
    ingest_dataset,
    instance_meta,
)

__all__ = [
    "CR_IMAGE_STORAGE",
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
    "ingest_dataset",
    "instance_meta",
]
