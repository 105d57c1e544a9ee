"""The DICOM receiver: a pynetdicom Storage SCP that feeds the worklist.

For each C-STORE the receiver checks the image is one radiolens can score (a
single-frame greyscale radiograph of an accepted SOP class), writes the file
atomically to ``data_dir/dicom/<StudyInstanceUID>/<SOPInstanceUID>.dcm``, records it in
the worklist and only then answers success, so a sender never believes an image is
safe when it is not. Errors become DICOM status codes; the server keeps serving.
It never imports torch: scoring happens in the worker.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy import Engine

from radiolens.errors import RadiolensError, WorklistError
from radiolens.worklist import default_db_path, open_worklist, record_instance

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

logger = logging.getLogger(__name__)

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
DX_PROCESSING_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1.1"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
VERIFICATION = "1.2.840.10008.1.1"
#: Single-frame SOP classes accepted by default (the multi-frame SC classes are not).
DEFAULT_SOP_CLASSES: tuple[str, ...] = (
    CR_IMAGE_STORAGE,
    DX_PRESENTATION_STORAGE,
    DX_PROCESSING_STORAGE,
    SECONDARY_CAPTURE_STORAGE,
)

STATUS_SUCCESS = 0x0000
#: Storage failed (disk or database): the sender should retry later.
STATUS_OUT_OF_RESOURCES = 0xA700
#: The dataset lacks what its SOP class requires (UIDs, pixel data) or is truncated.
STATUS_MISMATCH = 0xA900
#: A valid image radiolens cannot score (colour, multi-frame).
STATUS_CANNOT_UNDERSTAND = 0xC001
#: The dataset could not be decoded.
STATUS_DECODE_FAILED = 0xC210
#: An unexpected error in the receiver.
STATUS_PROCESSING_FAILED = 0xC211

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class InstanceRefused(RadiolensError, ValueError):
    """A DICOM instance radiolens refuses to store, with the DICOM status to answer.

    Attributes:
        status: the C-STORE failure status (e.g. :data:`STATUS_CANNOT_UNDERSTAND`).
        reason: what is wrong with the instance, for the sender or the uploader.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def instance_meta(ds: Dataset) -> dict[str, Any]:
    """Return the worklist fields of a dataset (see :func:`radiolens.worklist.record_instance`)."""

    def text(keyword: str) -> str | None:
        value = ds.get(keyword)
        return str(value).strip() or None if value is not None else None

    return {
        "sop_instance_uid": text("SOPInstanceUID"),
        "study_instance_uid": text("StudyInstanceUID"),
        "series_instance_uid": text("SeriesInstanceUID"),
        "sop_class_uid": text("SOPClassUID"),
        "patient_id": text("PatientID"),
        "patient_name": text("PatientName"),
        "patient_sex": text("PatientSex"),
        "patient_birth_date": text("PatientBirthDate"),
        "accession_number": text("AccessionNumber"),
        "study_date": text("StudyDate"),
        "modality": text("Modality"),
        "study_description": text("StudyDescription"),
    }


def _check_uid(ds: Dataset, keyword: str) -> str:
    value = str(ds.get(keyword, "")).strip()
    if not value:
        raise InstanceRefused(STATUS_MISMATCH, f"no {keyword}")
    if len(value) > 64 or not _UID.match(value):
        raise InstanceRefused(STATUS_MISMATCH, f"invalid {keyword} {value[:70]!r}")
    return value


def _validate(ds: Dataset, accepted: frozenset[str], transfer_syntax: str) -> None:
    """Raise :class:`InstanceRefused` unless ``ds`` is a single-frame greyscale image we accept."""
    sop_class = str(ds.get("SOPClassUID", "")).strip()
    if sop_class not in accepted:
        raise InstanceRefused(STATUS_MISMATCH, f"SOP class {sop_class or '(none)'} not accepted")
    _check_uid(ds, "StudyInstanceUID")
    _check_uid(ds, "SOPInstanceUID")
    if "PixelData" not in ds:
        raise InstanceRefused(STATUS_MISMATCH, "no pixel data")
    frames = ds.get("NumberOfFrames", 1)
    try:
        frames = int(frames or 1)
    except (TypeError, ValueError):
        raise InstanceRefused(STATUS_MISMATCH, f"invalid NumberOfFrames {frames!r}") from None
    if frames != 1:
        raise InstanceRefused(STATUS_CANNOT_UNDERSTAND, f"multi-frame image ({frames} frames)")
    samples = ds.get("SamplesPerPixel", 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InstanceRefused(
            STATUS_CANNOT_UNDERSTAND,
            f"not greyscale ({photometric or 'no photometric'}, {samples} samples/pixel)",
        )
    rows, columns, bits = ds.get("Rows"), ds.get("Columns"), ds.get("BitsAllocated")
    if not rows or not columns or not bits:
        raise InstanceRefused(STATUS_MISMATCH, "no Rows, Columns or BitsAllocated")
    if not UID(transfer_syntax).is_compressed:
        expected = (int(rows) * int(columns) * int(bits) + 7) // 8
        found = len(ds.PixelData)
        if found < expected:
            raise InstanceRefused(
                STATUS_MISMATCH, f"pixel data truncated ({found} of {expected} bytes)"
            )


def _write_atomic(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` through a fsynced temporary file and ``os.replace``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(dest.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _transfer_syntax(ds: Dataset) -> str:
    """The dataset's transfer syntax: its file meta, else how pydicom decoded it."""
    meta = getattr(ds, "file_meta", None)
    found = str(meta.get("TransferSyntaxUID", "")).strip() if meta is not None else ""
    if found:
        return found
    return ImplicitVRLittleEndian if ds.original_encoding[0] else ExplicitVRLittleEndian


def _encode(ds: Dataset, transfer_syntax: str) -> bytes:
    """Encode ``ds`` as a DICOM file (preamble and file meta), keeping its transfer syntax."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        new_meta = FileMetaDataset(meta) if meta is not None else FileMetaDataset()
        new_meta.TransferSyntaxUID = UID(transfer_syntax)
        ds.file_meta = new_meta
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def ingest_dataset(
    data_dir: Path,
    engine: Engine,
    ds: Dataset,
    encoded: bytes | None = None,
    accepted_sop_classes: Sequence[str] = DEFAULT_SOP_CLASSES,
) -> tuple[str, bool]:
    """Validate one instance, store it atomically and record it in the worklist.

    The checks are the receiver's: an accepted single-frame SOP class, valid Study and
    SOP Instance UIDs, greyscale pixel data of the declared size. The file goes to
    ``data_dir/dicom/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` (kept if already there).

    Args:
        data_dir: the service's data directory.
        engine: the worklist engine.
        ds: the decoded dataset; its file meta (if any) gives the transfer syntax.
        encoded: the instance as a DICOM file (with file meta); None to encode ``ds``.
        accepted_sop_classes: the SOP classes accepted.

    Returns:
        ``(study_instance_uid, created)``: the study the instance is recorded in, and
        False when the instance was already stored (a duplicate).

    Raises:
        InstanceRefused: the instance is invalid or one radiolens cannot score.
        OSError: the file cannot be written.
        WorklistError: the worklist cannot be written.

    Example:
        >>> ingest_dataset(Path("data"), engine, pydicom.dcmread("cxr.dcm"))  # doctest: +SKIP
        ('1.2.826.0.1.3680043.8.498.1', True)
    """
    try:
        transfer_syntax = _transfer_syntax(ds)
        _validate(ds, frozenset(accepted_sop_classes), transfer_syntax)
    except InstanceRefused:
        raise
    except Exception as exc:  # a lazily decoded element that cannot be parsed
        raise InstanceRefused(STATUS_DECODE_FAILED, f"cannot decode dataset: {exc}") from exc
    study_uid = str(ds.StudyInstanceUID).strip()
    sop_uid = str(ds.SOPInstanceUID).strip()
    relative = Path("dicom") / study_uid / f"{sop_uid}.dcm"
    dest = Path(data_dir) / relative
    wrote = False
    if dest.exists():
        size = dest.stat().st_size
    else:
        if encoded is None:
            try:
                encoded = _encode(ds, transfer_syntax)
            except Exception as exc:
                raise InstanceRefused(
                    STATUS_DECODE_FAILED, f"cannot encode dataset: {exc}"
                ) from exc
        _write_atomic(dest, encoded)
        size, wrote = len(encoded), True
    try:
        study, created = record_instance(engine, meta=instance_meta(ds), path=relative, size=size)
    except BaseException:
        if wrote:  # leave no file the worklist does not know; the sender retries
            dest.unlink(missing_ok=True)
        raise
    if wrote and not created and study.study_instance_uid != study_uid:
        dest.unlink(missing_ok=True)  # already stored under another study: keep one copy
    return study.study_instance_uid, created


def _failure(status: int, comment: str) -> Dataset:
    reply = Dataset()
    reply.Status = status
    reply.ErrorComment = comment[:64]
    return reply


class DicomReceiver:
    """A DICOM Storage SCP that stores chest radiographs and queues them for scoring.

    The constructor only stores settings; :meth:`start` opens the worklist and listens.

    Args:
        data_dir: where files go (``data_dir/dicom/...``) and, by default, the worklist.
        engine: a worklist engine, a database path or URL; None for
            ``data_dir/worklist.db``.
        ae_title: our AE title.
        port: the TCP port (0 picks a free one; read it back from :attr:`port`).
        host: the address to listen on.
        accepted_sop_classes: the Storage SOP classes accepted (single-frame only).
        transfer_syntaxes: accepted transfer syntaxes; None for the uncompressed ones.
        require_called_aet: reject associations not addressed to ``ae_title``.

    Example:
        >>> receiver = DicomReceiver("data", port=11112)
        >>> receiver.start()  # doctest: +SKIP
        >>> receiver.stats  # doctest: +SKIP
        {'associations': 0, 'echoes': 0, 'received': 0, 'duplicates': 0, 'failed': 0}
        >>> receiver.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        data_dir: str | Path,
        engine: Engine | str | Path | None = None,
        *,
        ae_title: str = "RADIOLENS",
        port: int = 11112,
        host: str = "0.0.0.0",
        accepted_sop_classes: Sequence[str] = DEFAULT_SOP_CLASSES,
        transfer_syntaxes: Sequence[str] | None = None,
        require_called_aet: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.engine = engine
        self.ae_title = ae_title
        self.host = host
        self.requested_port = port
        self.accepted_sop_classes = tuple(accepted_sop_classes)
        self.transfer_syntaxes = tuple(transfer_syntaxes or DEFAULT_TRANSFER_SYNTAXES)
        self.require_called_aet = require_called_aet
        self.engine_: Engine | None = None
        self.ae_: AE | None = None
        self._server: ThreadedAssociationServer | None = None
        self._owns_engine = False
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stats = dict.fromkeys(
            ("associations", "echoes", "received", "duplicates", "failed"), 0
        )

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually listened on (the requested one before :meth:`start`)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self.requested_port

    @property
    def running(self) -> bool:
        """True while the server listens."""
        return self._server is not None

    @property
    def stats(self) -> dict[str, int]:
        """Counters: associations, echoes, received (new), duplicates, failed."""
        with self._lock:
            return dict(self._stats)

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _handlers(self) -> list[Any]:
        return [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),
        ]

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = self.require_called_aet
        for sop_class in self.accepted_sop_classes:
            ae.add_supported_context(sop_class, list(self.transfer_syntaxes))
        ae.add_supported_context(VERIFICATION)
        return ae

    def start(self, block: bool = False) -> None:
        """Open the worklist and listen for associations.

        Args:
            block: serve in this thread until :meth:`stop` (from another thread or a
                signal handler) or Ctrl-C; otherwise serve in background threads.

        Raises:
            WorklistError: the worklist database cannot be opened.
            OSError: the port cannot be listened on.
        """
        if self._server is not None:
            raise RuntimeError("the receiver is already running; call stop() first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(self.engine, Engine):
            self.engine_ = self.engine
        else:
            self.engine_ = open_worklist(self.engine or default_db_path(self.data_dir))
            self._owns_engine = True
        self.ae_ = self._build_ae()
        address = (self.host, self.requested_port)
        try:
            server = self.ae_.start_server(address, block=False, evt_handlers=self._handlers())
        except OSError as exc:
            self._close_engine()
            raise OSError(
                f"cannot listen on {self.host}:{self.requested_port} ({exc}): is another "
                "receiver running? choose another port"
            ) from exc
        assert server is not None
        self._server = server
        logger.info(
            "DICOM receiver %s listening on %s:%d, storing in %s",
            self.ae_title, self.host, self.port, self.data_dir,
        )
        if block:
            self._stopped.clear()
            try:
                while not self._stopped.wait(0.5):
                    pass
            except KeyboardInterrupt:
                logger.info("interrupted")
            finally:
                self.stop()

    def _close_engine(self) -> None:
        if self._owns_engine and self.engine_ is not None:
            self.engine_.dispose()
        self._owns_engine = False
        self.engine_ = None

    def stop(self) -> None:
        """Stop listening, end open associations and release the worklist engine."""
        with self._stop_lock:  # stop() may race with a blocking start() that is ending
            server, self._server = self._server, None
            self._stopped.set()
            if server is not None:
                server.shutdown()
                logger.info("DICOM receiver %s stopped; %s", self.ae_title, self.stats)
            if self.ae_ is not None:
                self.ae_.shutdown()
                self.ae_ = None
            self._close_engine()

    def __enter__(self) -> DicomReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers ----------------------------------------------------------------------

    @staticmethod
    def _peer(event: Event) -> str:
        requestor = event.assoc.requestor
        return f"{requestor.ae_title}@{requestor.address}:{requestor.port}"

    def _on_accepted(self, event: Event) -> None:
        self._count("associations")
        logger.info("association accepted from %s", self._peer(event))

    def _on_rejected(self, event: Event) -> None:
        logger.warning("association rejected from %s", self._peer(event))

    def _on_released(self, event: Event) -> None:
        logger.debug("association released by %s", self._peer(event))

    def _on_aborted(self, event: Event) -> None:
        logger.warning("association aborted with %s", self._peer(event))

    def _on_echo(self, event: Event) -> int:
        self._count("echoes")
        logger.debug("C-ECHO from %s", self._peer(event))
        return STATUS_SUCCESS

    def _on_store(self, event: Event) -> int | Dataset:
        peer = self._peer(event)
        sop_uid = "(unknown)"
        try:
            try:
                ds = event.dataset
                ds.file_meta = event.file_meta
                sop_uid = str(ds.get("SOPInstanceUID", sop_uid))
            except Exception as exc:
                raise InstanceRefused(
                    STATUS_DECODE_FAILED, f"cannot decode dataset: {exc}"
                ) from exc
            assert self.engine_ is not None
            _, created = ingest_dataset(
                self.data_dir, self.engine_, ds,
                encoded=event.encoded_dataset(include_meta=True),
                accepted_sop_classes=self.accepted_sop_classes,
            )
        except InstanceRefused as exc:
            self._count("failed")
            logger.warning(
                "refused instance %s from %s: %s (status 0x%04X)",
                sop_uid, peer, exc.reason, exc.status,
            )
            return _failure(exc.status, exc.reason)
        except (OSError, WorklistError) as exc:
            self._count("failed")
            logger.error("could not store instance %s from %s: %s", sop_uid, peer, exc)
            return _failure(STATUS_OUT_OF_RESOURCES, f"storage failed: {exc}")
        except Exception as exc:
            self._count("failed")
            logger.exception("unexpected error storing instance %s from %s", sop_uid, peer)
            return _failure(STATUS_PROCESSING_FAILED, f"receiver error: {exc}")
        self._count("received" if created else "duplicates")
        logger.info(
            "%s instance %s from %s",
            "stored" if created else "duplicate of stored", sop_uid, peer,
        )
        return STATUS_SUCCESS
