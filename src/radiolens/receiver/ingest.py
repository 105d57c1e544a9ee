"""The one ingest path: validate a DICOM instance, store it atomically, record it.

The Storage SCP (:mod:`radiolens.receiver.scp`), HTTP uploads
(:mod:`radiolens.serve.upload`) and, later, STOW-RS all call :func:`ingest_dataset`, so
an instance is accepted or refused by the same rules whichever way it came. This module
needs pydicom and the worklist, not pynetdicom. Refusals raise
:class:`~radiolens.errors.InstanceRefused` carrying a DICOM status; each boundary maps
it to its own answer (a C-STORE status, an HTTP 4xx).

Group commit: the SCP passes a :class:`GroupCommitter`, which records whatever
instances are waiting (from any association) in ONE durable transaction, committed by
the handler that comes first, then answers each waiter with its own outcome. An
instance is still acknowledged only once its file and its worklist row are both on
disk; a lone instance is committed at once.

Overlapped fsync: the SCP also passes an executor, in which each new file is fsynced
while its row is recorded (two waits for the disk at once instead of one after the
other); the sender is still answered only once both are durable.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from sqlalchemy import Engine

from radiolens._fs import PendingFile, write_atomic, write_new
from radiolens.errors import DicomElementError, InstanceRefused
from radiolens.imaging.checks import DEFAULT_MAX_PIXELS, Refusal, check_radiograph
from radiolens.imaging.elements import element_value, transfer_syntax_uid
from radiolens.worklist import get_study, list_instances, record_instance
from radiolens.worklist.intake import RecordOutcome, record_instances

__all__ = [
    "CR_IMAGE_STORAGE",
    "DEFAULT_MAX_GROUP",
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
    "GroupCommitter",
    "InstanceRefused",
    "StoredInstance",
    "check_radiograph",
    "ingest_dataset",
    "instance_meta",
    "refusal_status",
    "store_instance",
]

logger = logging.getLogger(__name__)

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
DX_PROCESSING_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1.1"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
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
#: The dataset lacks what its SOP class requires (UIDs, pixel data), is truncated, or
#: declares an image larger than the pixel cap.
STATUS_MISMATCH = 0xA900
#: A valid image radiolens cannot score (colour, multi-frame).
STATUS_CANNOT_UNDERSTAND = 0xC001
#: The dataset could not be decoded.
STATUS_DECODE_FAILED = 0xC210
#: An unexpected error in the receiver.
STATUS_PROCESSING_FAILED = 0xC211

_STATUS_OF_KIND = {
    "invalid": STATUS_MISMATCH,
    "too-large": STATUS_MISMATCH,
    "unsupported": STATUS_CANNOT_UNDERSTAND,
}

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def refusal_status(refusal: Refusal) -> int:
    """The C-STORE status for a :class:`~radiolens.imaging.checks.Refusal`."""
    return _STATUS_OF_KIND[refusal.kind]


def instance_meta(ds: Dataset) -> dict[str, Any]:
    """Return the worklist fields of a dataset (see :func:`radiolens.worklist.record_instance`).

    Raises:
        DicomElementError: one of the fields cannot be decoded.
    """

    def text(keyword: str) -> str | None:
        value = element_value(ds, keyword)
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
    value = str(element_value(ds, keyword, "")).strip()
    if not value:
        raise InstanceRefused(STATUS_MISMATCH, f"no {keyword}")
    if len(value) > 64 or not _UID.match(value):
        raise InstanceRefused(STATUS_MISMATCH, f"invalid {keyword} (not a UID of at most 64 "
                                               "digits and dots)")
    return value


def _validate(ds: Dataset, accepted: frozenset[str], transfer_syntax: str,
              max_pixels: int) -> None:
    """Raise :class:`InstanceRefused` unless ``ds`` is an instance radiolens accepts."""
    sop_class = str(element_value(ds, "SOPClassUID", "")).strip()
    if sop_class not in accepted:
        shown = sop_class[:40] if _UID.match(sop_class) else "(invalid)"
        raise InstanceRefused(STATUS_MISMATCH, f"SOP class {shown or '(none)'} not accepted")
    _check_uid(ds, "StudyInstanceUID")
    _check_uid(ds, "SOPInstanceUID")
    refusal = check_radiograph(ds, max_pixels=max_pixels, transfer_syntax=transfer_syntax)
    if refusal is not None:
        raise InstanceRefused(refusal_status(refusal), refusal.reason)


def _transfer_syntax(ds: Dataset) -> str:
    """The dataset's transfer syntax: its file meta, else how pydicom decoded it.

    Raises:
        DicomElementError: the file meta names something that is not a transfer syntax.
    """
    found = transfer_syntax_uid(ds)
    if found is not None:
        return str(found)
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


@dataclass(frozen=True)
class StoredInstance:
    """An instance checked and written to disk, not yet recorded in the worklist.

    Attributes:
        meta: its worklist fields (:func:`instance_meta`).
        path: the file, relative to the data directory.
        dest: the file itself.
        size: its size in bytes.
        wrote: True when this call wrote a new file (False: it was already there).
        pending: the new file's fsyncs still to run (``store_instance(durable=False)``).
        differs: the file was already there with other bytes than those sent now.
        encoded: the bytes sent, kept when ``differs``.
    """

    meta: dict[str, Any]
    path: Path
    dest: Path
    size: int
    wrote: bool
    pending: PendingFile | None = None
    differs: bool = False
    encoded: bytes | None = None

    @property
    def study_instance_uid(self) -> str:
        """The Study Instance UID the instance came with."""
        return str(self.meta["study_instance_uid"])


def store_instance(
    data_dir: Path,
    ds: Dataset,
    encoded: bytes | None = None,
    accepted_sop_classes: Sequence[str] = DEFAULT_SOP_CLASSES,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    durable: bool = True,
) -> StoredInstance:
    """The first half of :func:`ingest_dataset`: check ``ds`` and write its file.

    With ``durable`` (the default) the file is fsynced before this returns; without, a
    new file is in place but :attr:`StoredInstance.pending` must still be synced (or
    discarded). The file of an instance stored before is left as it is;
    :attr:`StoredInstance.differs` says whether it holds other bytes than those sent.

    Raises:
        InstanceRefused: the instance is invalid or one radiolens cannot score.
        OSError: the file cannot be written.
    """
    try:
        transfer_syntax = _transfer_syntax(ds)
        _validate(ds, frozenset(accepted_sop_classes), transfer_syntax, max_pixels)
        meta = instance_meta(ds)  # before storing: every field it records must decode
    except InstanceRefused:
        raise
    except DicomElementError as exc:  # the one place an undecodable element is refused
        raise InstanceRefused(STATUS_DECODE_FAILED, f"{exc.reason}: {exc.detail}"[:200]) from exc
    except Exception as exc:  # a lazily decoded element that cannot be parsed
        raise InstanceRefused(STATUS_DECODE_FAILED, f"cannot decode dataset: {exc}"[:200]) from exc
    # the UIDs passed _check_uid, so instance_meta holds them stripped and non-empty
    study_uid, sop_uid = str(meta["study_instance_uid"]), str(meta["sop_instance_uid"])
    relative = Path("dicom") / study_uid / f"{sop_uid}.dcm"
    dest = Path(data_dir) / relative
    if encoded is None:
        try:
            encoded = _encode(ds, transfer_syntax)
        except Exception as exc:
            raise InstanceRefused(
                STATUS_DECODE_FAILED, f"cannot encode dataset: {exc}"[:200]
            ) from exc
    if dest.exists():
        differs = not _holds(dest, encoded)
        return StoredInstance(meta, relative, dest, len(encoded), wrote=False,
                              differs=differs, encoded=encoded if differs else None)
    if durable:
        write_atomic(dest, encoded)
        return StoredInstance(meta, relative, dest, len(encoded), wrote=True)
    pending = write_new(dest, encoded)
    return StoredInstance(meta, relative, dest, len(encoded), wrote=True, pending=pending)


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at ``path`` holds exactly ``data``."""
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _repair_if_damaged(engine: Engine, stored: StoredInstance) -> None:
    """Replace the stored file of an instance sent again with other bytes, if it is
    damaged; keep it otherwise.

    Damaged: the worklist records no such instance of the study (the receiver stopped
    before recording it, so nothing was scored from it), the file's size is not the one
    recorded, or it is not a DICOM file (no ``DICM`` after the preamble). That is what a
    crash leaves of a file whose fsync had not finished; its sender was never answered
    and sends it again. An intact file that differs from a resend (a corrected header)
    is kept: the study's results were made from it.
    """
    known = get_study(engine, stored.study_instance_uid) is not None
    recorded = {i.sop_instance_uid: i.size_bytes
                for i in list_instances(engine, stored.study_instance_uid)} if known else {}
    sop_uid = str(stored.meta["sop_instance_uid"])
    try:
        with open(stored.dest, "rb") as fh:
            head = fh.read(132)
        size = stored.dest.stat().st_size
    except OSError:
        head, size = b"", -1
    if sop_uid in recorded and size == recorded[sop_uid] and head[128:132] == b"DICM":
        logger.info("instance %s was sent again with other bytes; kept the stored copy",
                    sop_uid)
        return
    assert stored.encoded is not None
    logger.warning("instance %s: its stored file was damaged (a crash before its sender "
                   "was answered); replaced it with the copy sent again", sop_uid)
    write_atomic(stored.dest, stored.encoded)


@dataclass
class _Waiter:
    """One instance waiting for its group's commit."""

    record: tuple[Mapping[str, Any], Path, int]
    finished: bool = False
    outcome: RecordOutcome | BaseException | None = None


#: Instances recorded in one transaction at most.
DEFAULT_MAX_GROUP = 64


class GroupCommitter:
    """Records stored instances in groups: one durable transaction for all that wait.

    Leader and followers: :meth:`record` (called by each C-STORE handler, after its file
    is written and fsynced) queues the instance. When no commit is running, the caller
    becomes the leader: it takes every instance queued (up to ``max_group``), records
    them in one transaction with :func:`radiolens.worklist.intake.record_instances` (one
    fsync of the WAL) and gives each its own outcome; meanwhile the instances of other
    associations queue behind it and form the next group, committed by one of their
    own threads. There is no delay and no hand-off to another thread: a lone instance
    is committed at once by its own handler. A record that fails on its own fails its
    instance only; when the transaction fails (a read-only or full disk), every instance
    of the group gets that error, and none is acknowledged.

    Args:
        engine: the worklist engine.
        max_group: instances recorded in one transaction at most.

    Example:
        >>> committer = GroupCommitter(engine)
        >>> committer.start()
        >>> committer.record(meta, Path("dicom/1.2/1.2.3.dcm"), 65_000)  # doctest: +SKIP
        ('1.2', True)
        >>> committer.stop()
    """

    def __init__(self, engine: Engine, *, max_group: int = DEFAULT_MAX_GROUP) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be at least 1, got {max_group}")
        self.engine = engine
        self.max_group = max_group
        self._queue: deque[_Waiter] = deque()
        self._cond = threading.Condition()
        self._running = False
        self._committing = False
        self._stats = {"groups": 0, "instances": 0, "largest_group": 0, "failed_groups": 0}

    @property
    def stats(self) -> dict[str, int]:
        """Counters: groups (transactions), instances, largest_group, failed_groups."""
        with self._cond:
            return dict(self._stats)

    @property
    def pending(self) -> int:
        """Instances queued and not yet taken into a group."""
        with self._cond:
            return len(self._queue)

    def start(self) -> None:
        """Start grouping records."""
        with self._cond:
            if self._running:
                raise RuntimeError("the committer is already running")
            self._running = True

    def stop(self) -> None:
        """Let what is queued be committed; later records commit directly."""
        with self._cond:
            self._running = False
            while self._queue or self._committing:
                self._cond.wait()

    def record(self, meta: Mapping[str, Any], path: Path, size: int) -> tuple[str, bool]:
        """Record one instance (in the next group) and wait until it is durable.

        Returns:
            ``(study_instance_uid, created)`` as :func:`record_instance` gives them.

        Raises:
            ValueError: a required UID is missing.
            WorklistError: the worklist cannot be written.
        """
        waiter = _Waiter((meta, path, size))
        with self._cond:
            if self._running:
                self._queue.append(waiter)
                while not waiter.finished:
                    if self._committing:
                        self._cond.wait()
                        continue
                    take = min(len(self._queue), self.max_group)
                    group = [self._queue.popleft() for _ in range(take)]
                    self._committing = True
                    self._cond.release()
                    try:
                        outcomes, failed = self._commit(group)
                    finally:
                        self._cond.acquire()
                        self._committing = False
                    for member, result in zip(group, outcomes, strict=True):
                        member.outcome, member.finished = result, True
                    self._count(len(group), failed)
                    self._cond.notify_all()
        if not waiter.finished:  # stopping or not started: the direct path, as before
            study, created = record_instance(self.engine, meta=meta, path=path, size=size)
            return study.study_instance_uid, created
        outcome = waiter.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome

    def _commit(self, group: list[_Waiter]
                ) -> tuple[Sequence[RecordOutcome | BaseException], bool]:
        """Record ``group`` in one transaction: the outcomes, and whether it failed whole."""
        try:
            return record_instances(self.engine, [w.record for w in group]), False
        except BaseException as exc:  # the transaction failed: nobody is acknowledged
            logger.error("could not record a group of %d instances: %s", len(group), exc)
            return [exc] * len(group), True

    def _count(self, size: int, failed: bool) -> None:
        self._stats["groups"] += 1
        self._stats["failed_groups"] += failed
        self._stats["instances"] += size
        self._stats["largest_group"] = max(self._stats["largest_group"], size)


def _start_sync(pending: PendingFile, file_sync: Executor | None) -> Future[None]:
    """Run ``pending.sync`` in ``file_sync``, or here when that is shut down (stopping)."""
    if file_sync is not None:
        try:
            return file_sync.submit(pending.sync)
        except RuntimeError:
            pass
    done: Future[None] = Future()
    try:
        pending.sync()
        done.set_result(None)
    except OSError as exc:
        done.set_exception(exc)
    return done


def ingest_dataset(
    data_dir: Path,
    engine: Engine,
    ds: Dataset,
    encoded: bytes | None = None,
    accepted_sop_classes: Sequence[str] = DEFAULT_SOP_CLASSES,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    committer: GroupCommitter | None = None,
    file_sync: Executor | None = None,
) -> tuple[str, bool]:
    """Validate one instance, store it atomically and record it in the worklist.

    The checks: an accepted single-frame SOP class, valid Study and SOP Instance UIDs,
    and :func:`~radiolens.imaging.checks.check_radiograph` (greyscale pixel data of the
    declared size, Rows x Columns within ``max_pixels``; nothing is decoded). The file
    goes to ``data_dir/dicom/<StudyInstanceUID>/<SOPInstanceUID>.dcm`` (kept if already
    there) through :func:`radiolens._fs.write_atomic`.

    Args:
        data_dir: the service's data directory.
        engine: the worklist engine.
        ds: the decoded dataset; its file meta (if any) gives the transfer syntax.
        encoded: the instance as a DICOM file (with file meta); None to encode ``ds``.
        accepted_sop_classes: the SOP classes accepted.
        max_pixels: the pixel cap (Rows x Columns).
        committer: record through this :class:`GroupCommitter` (in a group with the
            instances of other associations) instead of in a transaction of its own;
            either way this returns once the instance is durable.
        file_sync: fsync a new file in this executor while its worklist row is
            recorded, instead of before (about 1 ms less per instance on one
            association, ``bench/ingest_bench.py``). This still returns only once the
            file and the row are both durable; what changes is that for the moment
            between, the row may be committed (and seen) before the file is durable.
            A crash there leaves a row whose file may be cut short and whose sender
            was never acknowledged: its retry rewrites the file (a resend whose
            stored file is missing, of another size than recorded, or not DICOM).

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
    stored = store_instance(data_dir, ds, encoded, accepted_sop_classes,
                            max_pixels=max_pixels, durable=file_sync is None)
    if stored.differs:
        _repair_if_damaged(engine, stored)
    synced = None if stored.pending is None else _start_sync(stored.pending, file_sync)
    try:
        if committer is None:
            study, created = record_instance(engine, meta=stored.meta, path=stored.path,
                                             size=stored.size)
            study_uid = study.study_instance_uid
        else:
            study_uid, created = committer.record(stored.meta, stored.path, stored.size)
    except BaseException:
        if synced is not None:
            wait([synced])
        if stored.wrote:  # leave no file the worklist does not know; the sender retries
            stored.dest.unlink(missing_ok=True)
        raise
    if synced is not None:
        try:
            synced.result()
        except OSError:
            # recorded, but the file may not last: remove it and refuse; the sender's
            # retry writes it again (the worker fails the study should it come first,
            # and the resend of a failed study re-queues it)
            stored.dest.unlink(missing_ok=True)
            raise
    if stored.wrote and not created and study_uid != stored.study_instance_uid:
        stored.dest.unlink(missing_ok=True)  # already stored under another study: one copy
    return study_uid, created
