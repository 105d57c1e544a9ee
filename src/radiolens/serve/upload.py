"""Turn uploaded files (DICOM, PNG, JPEG) into worklist instances.

DICOM goes through :func:`radiolens.receiver.ingest.ingest_dataset`, exactly as if a PACS
had sent it. PNG and JPEG become a greyscale Secondary Capture whose UIDs derive from
the file's content, so uploading the same picture twice is recognised as a duplicate.
Their size is read from the header and checked against the pixel cap before they are
decoded. The client's file name and the patient fields are never logged.

:class:`UploadSizeLimit` is the ASGI middleware that caps the request body while it
streams in, so a chunked upload without Content-Length is refused once it passes the cap
instead of being spooled whole first.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid
from sqlalchemy import Engine

from radiolens.errors import ImageReadError, InputFormatError, InstanceRefused
from radiolens.imaging import has_dicom_preamble, load_grey_array, to_secondary_capture
from radiolens.imaging.checks import DEFAULT_MAX_PIXELS
from radiolens.receiver.ingest import (
    STATUS_DECODE_FAILED,
    STATUS_MISMATCH,
    ingest_dataset,
)
from radiolens.serve.schemas import UploadItem

__all__ = ["UploadSizeLimit", "ingest_upload", "sniff_format"]

logger = logging.getLogger(__name__)

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


def sniff_format(data: bytes) -> str:
    """Return ``"dicom"``, ``"dicom-raw"`` (no preamble), ``"png"`` or ``"jpeg"`` from content.

    Raises:
        InstanceRefused: the content is empty or of no supported kind.
    """
    if not data:
        raise InstanceRefused(STATUS_MISMATCH, "the file is empty")
    if data.startswith(_PNG):
        return "png"
    if data.startswith(_JPEG):
        return "jpeg"
    if has_dicom_preamble(data[:132]):
        return "dicom"
    # DICOM without preamble starts with a group 0002 or 0008 tag, little endian
    if data[:2] in (b"\x02\x00", b"\x08\x00"):
        return "dicom-raw"
    raise InstanceRefused(
        STATUS_MISMATCH, "not a DICOM, PNG or JPEG file (unrecognised content)"
    )


def _secondary_capture(data: bytes, fmt: str, patient_id: str, patient_name: str,
                       max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """Encode a PNG/JPEG as a Secondary Capture DICOM file; UIDs derive from the content."""
    digest = hashlib.sha256(data).hexdigest()
    try:  # Pillow reads the size from the header; over the cap nothing is decoded
        pixels, _mode = load_grey_array(BytesIO(data), max_pixels=max_pixels,
                                        name=fmt.upper())
    except ImageReadError as exc:
        raise InstanceRefused(STATUS_DECODE_FAILED, str(exc)) from exc
    pid = patient_id or f"ANON-{digest[:10]}"
    ds = to_secondary_capture(
        pixels,
        patient_id=pid,
        patient_name=patient_name,
        study_instance_uid=generate_uid(entropy_srcs=[digest, pid, "study"]),
        study_description="Uploaded image",
    )
    sop_uid = generate_uid(entropy_srcs=[digest, pid, "sop"])
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[digest, pid, "series"])
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ingest_upload(
    data_dir: Path,
    engine: Engine,
    filename: str,
    data: bytes,
    *,
    patient_id: str = "",
    patient_name: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> UploadItem:
    """Validate, store and record one uploaded file; never raises on bad content.

    Args:
        data_dir: the service's data directory.
        engine: the worklist engine.
        filename: the name the client gave (for the answer and the log only).
        data: the file's bytes.
        patient_id: Patient ID for PNG/JPEG (default ``ANON-<hash of the file>``).
        patient_name: Patient's Name for PNG/JPEG (DICOM form ``Family^Given``).
        max_pixels: the pixel cap, checked from the header before decoding.

    Returns:
        ``stored``, ``duplicate`` or ``refused`` (with the reason) for this file.

    Raises:
        WorklistError, OSError: the worklist or the disk cannot be written (not the
            client's fault; the API answers 503).
    """
    try:
        fmt = sniff_format(data)
        if fmt in ("png", "jpeg"):
            data = _secondary_capture(data, fmt, patient_id, patient_name, max_pixels)
            fmt = "dicom"
        try:
            ds = dcmread(BytesIO(data), force=fmt == "dicom-raw")
        except InvalidDicomError as exc:
            raise InstanceRefused(STATUS_DECODE_FAILED, "not a readable DICOM file") from exc
        except Exception as exc:  # pydicom raises many kinds on garbage
            raise InstanceRefused(
                STATUS_DECODE_FAILED,
                f"cannot read DICOM ({type(exc).__name__}): the file is truncated or corrupt",
            ) from exc
        study_uid, created = ingest_dataset(
            data_dir, engine, ds, encoded=data if fmt == "dicom" else None,
            max_pixels=max_pixels,
        )
    except InstanceRefused as exc:  # neither the client's file name nor patient fields
        logger.warning("upload refused: %s", exc.reason)
        return UploadItem(filename=filename, status="refused", error=exc.reason)
    except InputFormatError as exc:  # a field to_secondary_capture cannot store
        logger.warning("upload refused: %s", exc)
        return UploadItem(filename=filename, status="refused", error=str(exc))
    logger.info("upload %s in study %s",
                "stored" if created else "was a duplicate", study_uid)
    return UploadItem(
        filename=filename,
        status="stored" if created else "duplicate",
        study_instance_uid=study_uid,
    )


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyTooLarge(Exception):
    """Raised into the app's body reading once the cap is passed (the 413 is sent)."""


class UploadSizeLimit:
    """ASGI middleware: cap the request body of uploads as it streams in.

    The declared Content-Length is checked first (413 before any byte is read); then the
    bytes are counted as they arrive, so a chunked body (no Content-Length) gets its 413
    as soon as it passes the cap instead of being spooled whole to a temporary file.

    Args:
        app: the ASGI application.
        max_bytes: a callable giving the cap in bytes (read per request, so it can come
            from the app's settings), or an int.
        paths: the request paths (POST) the cap applies to; one ending in ``/`` covers
            every path below it.

    Example:
        >>> app.add_middleware(UploadSizeLimit, max_bytes=200 * 2**20)  # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp, max_bytes: int | Callable[[Scope], int],
                 paths: tuple[str, ...] = ("/api/upload",)) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths

    def _covers(self, path: str) -> bool:
        """Whether the cap applies to ``path`` (an entry ending in ``/`` is a prefix)."""
        return any(path == p or (p.endswith("/") and path.startswith(p)) for p in self.paths)

    def _limit(self, scope: Scope) -> int:
        return self.max_bytes(scope) if callable(self.max_bytes) else int(self.max_bytes)

    @staticmethod
    async def _refuse(send: Send, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode("utf-8")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") != "POST"
                or not self._covers(str(scope.get("path", "")))):
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        too_large = f"upload too large (more than {limit} bytes in one request)"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(send, too_large)
            return
        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not refused:
                        refused = True
                        await self._refuse(send, too_large)
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # once the 413 is out, whatever the app answers is dropped
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not refused:
                raise
