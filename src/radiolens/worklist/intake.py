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
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist._session import (
    Bind,
    _durable_transaction,
)
from radiolens.worklist.jobs import _new_job, _requeue
from radiolens.worklist.models import (
    Instance,
    Patient,
    Study,
    utcnow,
)

logger = logging.getLogger(__name__)



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


