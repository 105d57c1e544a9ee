"""Intake: record a received instance (the commit a C-STORE is acknowledged on).

Re-queue rule: the first instance of a study creates the study and one pending job. A
later instance of the same study re-queues it: nothing changes while its job is pending;
a running job is marked ``rerun`` and returns to pending when it completes; a scored or
failed study gets a new pending job. A study therefore never has two active jobs, and
its score always covers every instance received. An instance sent again (a resend from
the PACS) of a *failed* study re-queues it too.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, cast

from sqlalchemy import Engine, Insert, Select, Table, bindparam, insert, literal, select, union_all
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist._session import (
    Bind,
    _durable_transaction,
)
from radiolens.worklist.jobs import _new_job, _requeue
from radiolens.worklist.models import (
    Instance,
    Job,
    Patient,
    Study,
    utcnow,
)

logger = logging.getLogger(__name__)

#: One instance to record: ``(meta, path, size)`` as :func:`record_instance` takes them.
InstanceRecord = tuple[Mapping[str, Any], "str | PurePath", int]
#: What :func:`record_instances` gives for one instance: ``(study_instance_uid, created)``,
#: or the exception that refused that instance alone.
RecordOutcome = tuple[str, bool] | Exception


def _meta_str(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _meta_date(meta: Mapping[str, Any], key: str) -> dt.date | None:
    value = meta.get(key)
    if value is None or isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _patient_for(session: Session, meta: Mapping[str, Any]) -> Patient | None:
    patient_id = _meta_str(meta, "patient_id")
    if patient_id is None:
        return None
    patient = session.scalars(select(Patient).where(Patient.patient_id == patient_id)).first()
    if patient is None:
        patient = Patient(
            patient_id=patient_id,
            name=_meta_str(meta, "patient_name"),
            sex=_meta_str(meta, "patient_sex"),
            birth_date=_meta_date(meta, "patient_birth_date"),
        )
        session.add(patient)
        session.flush()
    return patient



def record_instance(
    bind: Bind, *, meta: Mapping[str, Any], path: str | PurePath, size: int
) -> tuple[Study, bool]:
    """Record one stored DICOM instance, creating its patient, study and job as needed.

    Idempotent on the SOP Instance UID: recording it again changes nothing.

    Args:
        bind: engine or session.
        meta: ``sop_instance_uid`` and ``study_instance_uid`` (required), and optionally
            ``series_instance_uid``, ``sop_class_uid``, ``patient_id``, ``patient_name``,
            ``patient_sex``, ``patient_birth_date``, ``accession_number``,
            ``study_date`` (``YYYYMMDD`` or a date), ``modality``, ``study_description``.
        path: the file, relative to the data directory.
        size: the file size in bytes.

    Returns:
        ``(study, created)``; ``created`` is False for an instance already recorded.

    Raises:
        ValueError: a required UID is missing.
        WorklistError: the database cannot be written.
    """
    sop_uid = _meta_str(meta, "sop_instance_uid")
    study_uid = _meta_str(meta, "study_instance_uid")
    if sop_uid is None or study_uid is None:
        raise ValueError("meta needs 'sop_instance_uid' and 'study_instance_uid'")
    try:
        return _record_instance(bind, meta, sop_uid, study_uid, path, size)
    except IntegrityError as exc:
        if isinstance(bind, Session):
            raise WorklistError(f"worklist database error: {exc}") from exc
        # another process recorded the same patient/study/instance at the same moment
        try:
            return _record_instance(bind, meta, sop_uid, study_uid, path, size)
        except IntegrityError as again:
            raise WorklistError(f"worklist database error: {again}") from again


def _record_instance(
    bind: Bind,
    meta: Mapping[str, Any],
    sop_uid: str,
    study_uid: str,
    path: str | PurePath,
    size: int,
) -> tuple[Study, bool]:
    with _durable_transaction(bind) as session:  # the sender is acknowledged on this commit
        return _record_in(session, meta, sop_uid, study_uid, path, size)


def record_instances(bind: Bind, records: Sequence[InstanceRecord]) -> list[RecordOutcome]:
    """Record several stored instances in ONE durable transaction (one commit, one fsync).

    The group commit of the receiver: each instance is recorded by the rules of
    :func:`record_instance`. The common case, a new instance of a study new to the
    worklist, is written with a few Core statements per group (no ORM unit of work);
    any other instance (a resend, a study already on the worklist) in its own savepoint
    through the ORM, so an instance that fails on its own (a missing UID, a constraint
    conflict that persists after one retry) is refused alone and the others still
    commit. Should a Core insert conflict (another process recorded the same study or
    patient at that moment), the group is recorded again, one savepoint per instance. A
    failure of the transaction itself (the database is read-only, full, locked past the
    busy timeout, or its schema is broken) raises, and then none of the instances is
    recorded.

    Args:
        bind: engine or session (a session joins the caller's transaction).
        records: ``(meta, path, size)`` per instance, as :func:`record_instance` takes them.

    Returns:
        One outcome per record, in order: ``(study_instance_uid, created)``, or the
        exception (:class:`ValueError`, :class:`~radiolens.errors.WorklistError`) that
        refused that instance.

    Raises:
        WorklistError: the transaction failed; nothing of ``records`` was recorded.

    Example:
        >>> record_instances(engine, [(meta, "dicom/1.2/1.2.3.dcm", 65_000)])  # doctest: +SKIP
        [('1.2', True)]
    """
    if isinstance(bind, Engine):
        try:
            return _record_group(bind, records, fast=True)
        except IntegrityError:  # a conflict with another process's commit
            logger.info("recording a group of %d instances one by one", len(records))
    try:
        return _record_group(bind, records, fast=False)
    except IntegrityError as exc:  # only from a caller's session (savepoints otherwise)
        raise WorklistError(f"worklist database error: {exc}") from exc


def _record_group(bind: Bind, records: Sequence[InstanceRecord], *, fast: bool
                  ) -> list[RecordOutcome]:
    outcomes: list[RecordOutcome] = []
    with _durable_transaction(bind) as session:  # every sender of the group waits on it
        quick = _NewStudies(session, records) if fast else None
        for meta, path, size in records:
            outcome = quick.record(meta, path, size) if quick is not None else None
            if outcome is None:
                outcome = _record_nested(session, meta, path, size)
            outcomes.append(outcome)
        if quick is not None:
            quick.flush()
    return outcomes


def _table(model: type[Patient | Study | Job | Instance]) -> Table:
    return cast(Table, model.__table__)


def _known_in(kind: str, column: Any, key: str, row_id: Any) -> Select[Any]:
    return select(literal(kind).label("kind"), column.label("uid"), row_id.label("id")).where(
        column.in_(bindparam(key, expanding=True)))


#: What of a group's SOP Instance UIDs, Study Instance UIDs and Patient IDs the worklist
#: already holds, in one query (built once: no per-group compiling).
_KNOWN = union_all(
    _known_in("sop", Instance.sop_instance_uid, "sops", Instance.id),
    _known_in("study", Study.study_instance_uid, "studies", Study.id),
    _known_in("patient", Patient.patient_id, "patients", Patient.id),
)
_INSERT: dict[type[Any], Insert] = {model: insert(_table(model))
                                    for model in (Patient, Study, Job, Instance)}


class _NewStudies:
    """Core inserts for new instances of studies new to the worklist, one group at once.

    What the group's UIDs already match in the database is read with three queries;
    an instance whose SOP Instance UID or study is already there is left to the ORM
    path (:meth:`record` returns None). New patients and studies are inserted at once
    (their ids are needed); the jobs and instances in one ``executemany`` each at
    :meth:`flush`. The rows are those :func:`_record_in` writes for a new study.
    """

    def __init__(self, session: Session, records: Sequence[InstanceRecord]) -> None:
        self.conn = session.connection()
        sops, studies, patients = set(), set(), set()
        for meta, _path, _size in records:
            sops.add(_meta_str(meta, "sop_instance_uid"))
            studies.add(_meta_str(meta, "study_instance_uid"))
            patients.add(_meta_str(meta, "patient_id"))
        sops.discard(None)
        studies.discard(None)
        patients.discard(None)
        self.known_sops: set[str] = set()
        self.known_studies: set[str] = set()
        self.patients: dict[str, int] = {}
        for kind, uid, row_id in self.conn.execute(
                _KNOWN, {"sops": list(sops), "studies": list(studies),
                         "patients": list(patients)}):
            if kind == "sop":
                self.known_sops.add(uid)
            elif kind == "study":
                self.known_studies.add(uid)
            else:
                self.patients[uid] = int(row_id)
        self.new_studies: dict[str, int] = {}  # created in this group: uid -> id
        self.new_sops: dict[str, str] = {}  # recorded in this group: SOP -> study UID
        self.jobs: list[dict[str, Any]] = []
        self.instances: list[dict[str, Any]] = []

    def record(self, meta: Mapping[str, Any], path: str | PurePath, size: int
               ) -> RecordOutcome | None:
        sop_uid = _meta_str(meta, "sop_instance_uid")
        study_uid = _meta_str(meta, "study_instance_uid")
        if sop_uid is None or study_uid is None:
            return None
        if sop_uid in self.new_sops:  # sent twice in one group
            kept = self.new_sops[sop_uid]
            if kept != study_uid:
                logger.warning("instance %s arrived again under study %s; kept it in study %s",
                               sop_uid, study_uid, kept)
            return kept, False  # its study is new, hence queued: nothing to re-queue
        if sop_uid in self.known_sops or study_uid in self.known_studies:
            self.known_sops.add(sop_uid)  # the ORM records it; a repeat goes there too
            return None
        now = utcnow()
        study_id = self.new_studies.get(study_uid)
        if study_id is None:
            study_id = self._insert_study(meta, study_uid, now)
            self.new_studies[study_uid] = study_id
            job = _new_job(Study(id=study_id), now)  # transient: only its values are used
            self.jobs.append({c.key: getattr(job, c.key) for c in Job.__table__.columns
                              if c.key != "id"})
        # else: a study created in this group, whose job is pending: nothing changes
        self.instances.append({
            "sop_instance_uid": sop_uid, "study_fk": study_id,
            "series_instance_uid": _meta_str(meta, "series_instance_uid"),
            "sop_class_uid": _meta_str(meta, "sop_class_uid"),
            "path": Path(path).as_posix(), "received_at": now, "size_bytes": int(size),
        })
        self.new_sops[sop_uid] = study_uid
        return study_uid, True

    def _insert_study(self, meta: Mapping[str, Any], study_uid: str, now: dt.datetime) -> int:
        patient_fk = None
        patient_id = _meta_str(meta, "patient_id")
        if patient_id is not None:
            patient_fk = self.patients.get(patient_id)
            if patient_fk is None:
                patient_fk = self._insert(Patient, {
                    "patient_id": patient_id, "name": _meta_str(meta, "patient_name"),
                    "sex": _meta_str(meta, "patient_sex"),
                    "birth_date": _meta_date(meta, "patient_birth_date"),
                })
                self.patients[patient_id] = patient_fk
        return self._insert(Study, {
            "study_instance_uid": study_uid, "patient_fk": patient_fk,
            "accession_number": _meta_str(meta, "accession_number"),
            "study_date": _meta_date(meta, "study_date"),
            "modality": _meta_str(meta, "modality"),
            "description": _meta_str(meta, "study_description"),
            "status": "queued", "priority": 0, "priority_set_by": None, "flags": [],
            "findings": {}, "received_at": now,
        })

    def _insert(self, model: type[Patient] | type[Study], values: dict[str, Any]) -> int:
        result = self.conn.execute(_INSERT[model], values)
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    def flush(self) -> None:
        """Insert the jobs and instances gathered (before the commit)."""
        if self.jobs:
            self.conn.execute(_INSERT[Job], self.jobs)
        if self.instances:
            self.conn.execute(_INSERT[Instance], self.instances)


def _record_nested(
    session: Session, meta: Mapping[str, Any], path: str | PurePath, size: int
) -> RecordOutcome:
    """Record one instance of a group in a savepoint; its own failure is its outcome."""
    sop_uid = _meta_str(meta, "sop_instance_uid")
    study_uid = _meta_str(meta, "study_instance_uid")
    if sop_uid is None or study_uid is None:
        return ValueError("meta needs 'sop_instance_uid' and 'study_instance_uid'")
    failure: Exception | None = None
    for _attempt in range(2):  # a conflict with another process's commit: retry once
        try:
            with session.begin_nested():
                study, created = _record_in(session, meta, sop_uid, study_uid, path, size)
                uid = study.study_instance_uid  # read before a later savepoint may expire it
            return uid, created
        except IntegrityError as exc:
            failure = WorklistError(f"worklist database error: {exc}")
        except SQLAlchemyError:
            raise  # the transaction itself is in trouble: the whole group fails
        except Exception as exc:  # this instance alone (rolled back to its savepoint)
            logger.exception("could not record instance %s", sop_uid)
            return exc
    assert failure is not None
    return failure


def _record_in(
    session: Session,
    meta: Mapping[str, Any],
    sop_uid: str,
    study_uid: str,
    path: str | PurePath,
    size: int,
) -> tuple[Study, bool]:
    """Record one instance in ``session`` (the caller's transaction)."""
    now = utcnow()
    existing = session.scalars(
        select(Instance).where(Instance.sop_instance_uid == sop_uid)
    ).first()
    if existing is not None:
        study = session.get(Study, existing.study_fk)
        assert study is not None
        if study.study_instance_uid != study_uid:
            logger.warning(
                "instance %s arrived again under study %s; kept it in study %s",
                sop_uid, study_uid, study.study_instance_uid,
            )
        if study.status == "failed":  # a resend of a failed study: try it again
            session.refresh(study, with_for_update=True)
            _requeue(session, study, now, "a failed study was sent again")
        return study, False
    study = session.scalars(  # the study lock orders us with claims and completions
        select(Study).where(Study.study_instance_uid == study_uid).with_for_update(of=Study)
    ).first()
    if study is None:
        study = Study(
            study_instance_uid=study_uid,
            patient=_patient_for(session, meta),
            accession_number=_meta_str(meta, "accession_number"),
            study_date=_meta_date(meta, "study_date"),
            modality=_meta_str(meta, "modality"),
            description=_meta_str(meta, "study_description"),
            status="queued",
            priority=0,
            priority_set_by=None,
            flags=[],
            findings={},
            received_at=now,
        )
        session.add(study)
        session.flush()
        session.add(_new_job(study, now))
    else:
        _requeue(session, study, now)
    session.add(
        Instance(
            sop_instance_uid=sop_uid,
            study_fk=study.id,
            series_instance_uid=_meta_str(meta, "series_instance_uid"),
            sop_class_uid=_meta_str(meta, "sop_class_uid"),
            path=Path(path).as_posix(),
            received_at=now,
            size_bytes=int(size),
        )
    )
    return study, True
