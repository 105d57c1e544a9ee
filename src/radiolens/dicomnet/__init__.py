"""DICOM networking client: send files or datasets to a PACS and C-ECHO it.

Needs pydicom and pynetdicom (``pip install 'radiolens[dicom]'``).

Example:
    >>> from radiolens.dicomnet import echo, send_files
    >>> echo("ORTHANC@localhost:4242")  # doctest: +SKIP
    True
    >>> send_files(["study/1.dcm"], "ORTHANC@localhost:4242").ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

from radiolens.dicomnet.scu import (
    DEFAULT_CALLING_AE,
    AeAddress,
    SendReport,
    echo,
    parse_ae_address,
    send_dataset,
    send_files,
)

__all__ = [
    "DEFAULT_CALLING_AE",
    "AeAddress",
    "SendReport",
    "echo",
    "parse_ae_address",
    "send_dataset",
    "send_files",
]
