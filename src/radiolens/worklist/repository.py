"""Worklist operations: record instances, claim and finish jobs, prioritise, deliver.

Every function takes an :class:`~sqlalchemy.Engine` (it then runs in its own short
transaction, committed before it returns) or a :class:`~sqlalchemy.orm.Session` (it then
joins the caller's transaction and only flushes). Objects come back detached with their
columns loaded (``expire_on_commit=False``), so callers can read them after the session
closed; ``Study.patient`` is loaded with the study.

Re-queue rule: the first instance of a study creates the study and one pending job. A
later instance of the same study re-queues it: nothing changes while its job is pending;
a running job is marked ``rerun`` and returns to pending when it completes; a scored or
failed study gets a new pending job. A study therefore never has two active jobs, and
its score always covers every instance received. An instance sent again (a resend from
the PACS) of a *failed* study re-queues it too (:func:`requeue_failed` does the same on
request).

Resource faults (disk full, database read-only or gone) are not the study's fault:
:func:`release_job` hands a job back without counting the attempt.

Priority rule: a priority a person set is never lowered by the service; a model result
may only raise it (``priority_set_by`` stays ``"person"``).

Concurrency: on SQLite every write transaction holds the database lock from its start.
On PostgreSQL (READ COMMITTED) whatever changes a study's jobs first locks the study row
(``SELECT ... FOR UPDATE``), then the job; :func:`claim_job` locks both with ``SKIP
LOCKED`` and never waits. So the re-queue rule sees the job's committed state and no
two writers wait for each other in a cycle.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist.models import (
    DELIVERY_KINDS,
    DELIVERY_STATUSES,
    REVIEW_ACTIONS,
    STUDY_STATUSES,
    Delivery,
    Instance,
    Job,
    Patient,
    Result,
    Review,
    Study,
    utcnow,
)

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_MAX_ATTEMPTS",
    "DELIVERY_BACKOFF_BASE_S",
    "DELIVERY_MAX_ATTEMPTS",
    "NEEDS_CHECK_PRIORITY",
    "OUTPUT_MAX_ATTEMPTS",
    "add_review",
    "claim_job",
    "complete_job",
    "count_studies",
    "delivery_backoff",
    "due_deliveries",
    "fail_job",
    "get_job",
    "get_study",
    "list_deliveries",
    "list_instances",
    "list_results",
    "list_reviews",
    "list_studies",
    "mark_delivery",
    "mark_needs_check",
    "queue_delivery",
    "record_instance",
    "record_output_errors",
    "release_job",
    "renew_lease",
    "requeue_failed",
    "set_priority",
    "studies_missing_outputs",
    "update_result_outputs",
]

logger = logging.getLogger(__name__)

Bind = Engine | Session

#: Attempts a scoring job gets before its study is marked failed.
DEFAULT_MAX_ATTEMPTS = 3
#: Default lease of a claimed job, in seconds; renew it for long work.
DEFAULT_LEASE_S = 300.0
#: A failed delivery waits ``DELIVERY_BACKOFF_BASE_S * 2 ** (attempts - 1)`` seconds.
DELIVERY_BACKOFF_BASE_S = 5.0
#: Failed attempts after which a delivery is given up (status ``failed``).
DELIVERY_MAX_ATTEMPTS = 5
#: Tries at building a study's missing structured outputs (SR, FHIR, HL7, heatmap).
OUTPUT_MAX_ATTEMPTS = 3
#: The fixed priority of a ``needs-check`` study: below every flagged study (50+), low
#: but above a clearly normal one, so the image is looked at without jumping the queue.
NEEDS_CHECK_PRIORITY = 10


@contextmanager
def _transaction(bind: Bind | Connection) -> Iterator[Session]:
    """Yield a session: the caller's (flushed at the end) or a new committed one."""
    try:
        if isinstance(bind, Session):
            yield bind
            bind.flush()
            return
        with Session(bind, expire_on_commit=False) as session, session.begin():
            yield session
    except IntegrityError:
        raise
    except OperationalError as exc:
        engine = bind if isinstance(bind, Engine) else getattr(bind, "engine", None)
        if isinstance(engine, Engine):
            engine.dispose()  # pooled connections may stay read-only or broken: reopen them
        raise WorklistError(f"worklist database error: {exc}") from exc
    except SQLAlchemyError as exc:
        raise WorklistError(f"worklist database error: {exc}") from exc


@contextmanager
def _durable_transaction(bind: Bind) -> Iterator[Session]:
    """Like :func:`_transaction`, but a SQLite commit is fsynced (``synchronous=FULL``).

    For commits something is acknowledged on (a C-STORE): in WAL mode with ``NORMAL`` a
    power cut may lose the last commits, which the sender then believes stored.
    """
    if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
        with _transaction(bind) as session:
            yield session
        return
    try:
        conn = bind.connect()
    except OperationalError as exc:
        bind.dispose()
        raise WorklistError(f"worklist database error: {exc}") from exc
    with conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA synchronous=FULL")  # not allowed inside a transaction
        try:
            with _transaction(conn) as session:
                yield session
        finally:
            try:
                raw.execute("PRAGMA synchronous=NORMAL")
            except Exception:  # still in a failed transaction: drop the connection
                conn.invalidate()


def _check_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 100:
        raise ValueError(f"priority must be an integer from 0 to 100, got {priority!r}")
    return priority


def _study_by_uid(session: Session, uid: str) -> Study:
    study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).first()
    if study is None:
        raise WorklistError(f"no study with Study Instance UID {uid!r} on the worklist")
    return study


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


def _new_job(study: Study, now: dt.datetime) -> Job:
    return Job(
        study_fk=study.id,
        status="pending",
        attempts=0,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        rerun=False,
        created_at=now,
        updated_at=now,
    )


def _requeue(session: Session, study: Study, now: dt.datetime,
             why: str = "a new instance arrived") -> None:
    active = session.scalars(
        select(Job)
        .where(Job.study_fk == study.id, Job.status.in_(("pending", "running")))
        .order_by(Job.id.desc())
    ).first()
    if active is None:
        session.add(_new_job(study, now))
        study.status = "queued"
        study.error = None
        study.output_errors = None
        study.output_attempts = 0
        logger.info("study %s re-queued: %s", study.study_instance_uid, why)
    elif active.status == "running":
        active.rerun = True
        active.updated_at = now


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


def _give_up(job: Job, study: Study | None, now: dt.datetime, *, at_once: bool = False) -> None:
    job.status = "failed"
    job.lease_owner = None
    job.lease_expires_at = None
    job.updated_at = now
    if study is not None:
        study.status = "failed"
        study.error = (f"scoring failed: {job.last_error}" if at_once else
                       f"scoring failed after {job.attempts} attempts: {job.last_error}")
    logger.error("job %d failed for good: %s", job.id, job.last_error)


def claim_job(
    bind: Bind,
    owner: str,
    lease_seconds: float = DEFAULT_LEASE_S,
    *,
    now: dt.datetime | None = None,
) -> Job | None:
    """Atomically claim the next job: pending, or running with an expired lease.

    Jobs of higher-priority studies go first, then the oldest. Claiming counts an
    attempt; a job whose lease expired after its last allowed attempt is marked failed
    (and its study too) instead of being handed out.

    Args:
        bind: engine or session.
        owner: a name for the worker (host and pid), stored as the lease owner.
        lease_seconds: how long the job is the owner's without :func:`renew_lease`.
        now: the current time (for tests); defaults to :func:`utcnow`.

    Returns:
        The claimed job (status ``running``), or None when there is nothing to do.
    """
    now = now or utcnow()
    with _transaction(bind) as session:
        while True:
            job = session.scalars(
                select(Job)
                .join(Study, Study.id == Job.study_fk)
                .where(
                    or_(
                        Job.status == "pending",
                        and_(Job.status == "running", Job.lease_expires_at < now),
                    )
                )
                .order_by(Study.priority.desc(), Job.created_at, Job.id)
                .limit(1)
                .with_for_update(skip_locked=True, of=(Job, Study))
            ).first()
            if job is None:
                return None
            study = session.get(Study, job.study_fk)
            if job.status == "running":
                job.last_error = (
                    f"lease of worker {job.lease_owner!r} expired at "
                    f"{job.lease_expires_at:%Y-%m-%dT%H:%M:%SZ} (worker lost or too slow)"
                )
                logger.warning("job %d: %s", job.id, job.last_error)
            if job.attempts >= job.max_attempts:
                _give_up(job, study, now)
                continue
            job.attempts += 1
            job.status = "running"
            job.lease_owner = owner
            job.lease_expires_at = now + dt.timedelta(seconds=lease_seconds)
            job.updated_at = now
            if study is not None:
                study.status = "scoring"
            return job


def _owned_job(session: Session, job_id: int, owner: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise WorklistError(f"no job {job_id} on the worklist")
    # lock the study, then the job (the order record_instance uses), and re-read the job
    session.scalars(select(Study.id).where(Study.id == job.study_fk).with_for_update()).first()
    session.refresh(job, with_for_update=True)
    if job.status != "running" or job.lease_owner != owner:
        raise WorklistError(
            f"job {job_id} is not held by {owner!r} (status {job.status}, lease owner "
            f"{job.lease_owner!r}): its lease expired and it was taken back; drop this work"
        )
    return job


def renew_lease(
    bind: Bind,
    job_id: int,
    owner: str,
    lease_seconds: float = DEFAULT_LEASE_S,
    *,
    now: dt.datetime | None = None,
) -> dt.datetime:
    """Extend the lease of a running job held by ``owner``; return the new expiry.

    Raises:
        WorklistError: the job is no longer held by ``owner``.
    """
    now = now or utcnow()
    with _transaction(bind) as session:
        job = _owned_job(session, job_id, owner)
        job.lease_expires_at = now + dt.timedelta(seconds=lease_seconds)
        job.updated_at = now
        return job.lease_expires_at


def _apply_model_priority(study: Study, priority: int) -> None:
    if study.priority_set_by == "person":
        if priority > study.priority:
            study.priority = priority  # a model may raise a person's priority, never lower it
        return
    study.priority = priority
    study.priority_set_by = "model"


def complete_job(
    bind: Bind,
    job_id: int,
    owner: str,
    *,
    model: str,
    findings: Mapping[str, float],
    priority: int,
    flags: Sequence[str] = (),
    model_version: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    heatmap_paths: Mapping[str, str] | None = None,
    draft_text: str | None = None,
    sr_path: str | None = None,
    now: dt.datetime | None = None,
) -> Result:
    """Store a model result for a claimed job and mark the study scored.

    The study's priority becomes the model's, unless a person set a higher one.
    If an instance arrived while the job ran, the job goes back to pending.

    Raises:
        ValueError: ``priority`` is outside 0..100.
        WorklistError: the job is no longer held by ``owner``.
    """
    _check_priority(priority)
    now = now or utcnow()
    with _transaction(bind) as session:
        job = _owned_job(session, job_id, owner)
        study = session.get(Study, job.study_fk)
        assert study is not None
        result = Result(
            study_fk=study.id,
            model=model,
            model_version=model_version,
            findings={str(k): float(v) for k, v in findings.items()},
            flags=[str(f) for f in flags],
            thresholds={str(k): float(v) for k, v in (thresholds or {}).items()},
            priority=priority,
            heatmap_paths=dict(heatmap_paths or {}),
            draft_text=draft_text,
            sr_path=sr_path,
            created_at=now,
        )
        session.add(result)
        study.findings = dict(result.findings)
        study.flags = list(result.flags)
        study.model_name = model
        study.model_version = model_version
        study.scored_at = now
        study.error = None
        _apply_model_priority(study, priority)
        job.lease_owner = None
        job.lease_expires_at = None
        job.last_error = None
        job.updated_at = now
        if job.rerun:
            job.status = "pending"
            job.attempts = 0
            job.rerun = False
            study.status = "queued"
        else:
            job.status = "done"
            study.status = "scored"
        session.flush()
        return result


def fail_job(
    bind: Bind, job_id: int, owner: str, error: str, *, permanent: bool = False,
    now: dt.datetime | None = None,
) -> Job:
    """Record a failed attempt: back to pending, or failed (with its study) at the limit.

    Args:
        permanent: the failure cannot go away by retrying (an unreadable image): fail the
            job and its study at once.

    Raises:
        WorklistError: the job is no longer held by ``owner``.
    """
    now = now or utcnow()
    with _transaction(bind) as session:
        job = _owned_job(session, job_id, owner)
        study = session.get(Study, job.study_fk)
        job.last_error = error
        if permanent or job.attempts >= job.max_attempts:
            _give_up(job, study, now, at_once=permanent)
        else:
            _back_to_pending(job, study, now)
            logger.warning("job %d attempt %d failed: %s", job.id, job.attempts, error)
        return job


def _back_to_pending(job: Job, study: Study | None, now: dt.datetime) -> None:
    job.status = "pending"
    job.lease_owner = None
    job.lease_expires_at = None
    job.updated_at = now
    if study is not None:
        study.status = "queued"


def release_job(
    bind: Bind, job_id: int, owner: str, reason: str, *, now: dt.datetime | None = None
) -> Job:
    """Hand a claimed job back to pending without counting the attempt.

    For resource faults (disk full, database read-only) that are not the study's fault;
    the worker backs off and the job is claimed again later.

    Raises:
        WorklistError: the job is no longer held by ``owner``, or the database is still
            unwritable.
    """
    now = now or utcnow()
    with _transaction(bind) as session:
        job = _owned_job(session, job_id, owner)
        job.attempts = max(0, job.attempts - 1)
        job.last_error = reason
        _back_to_pending(job, session.get(Study, job.study_fk), now)
        logger.info("job %d handed back, attempt not counted: %s", job.id, reason)
        return job


def mark_needs_check(
    bind: Bind, job_id: int, owner: str, reason: str, *, now: dt.datetime | None = None
) -> Study:
    """Finish a job whose images failed the input gate: the study is ``needs-check``.

    Nothing is scored: flags and findings are cleared, ``error`` holds ``check image:
    <reason>`` and the priority becomes :data:`NEEDS_CHECK_PRIORITY` (a person's
    priority is kept).

    Raises:
        WorklistError: the job is no longer held by ``owner``.
    """
    now = now or utcnow()
    with _transaction(bind) as session:
        job = _owned_job(session, job_id, owner)
        study = session.get(Study, job.study_fk)
        assert study is not None
        job.status = "done"
        job.lease_owner = None
        job.lease_expires_at = None
        job.last_error = reason
        job.updated_at = now
        study.status = "needs-check"
        study.error = f"check image: {reason}"
        study.flags = []
        study.findings = {}
        if study.priority_set_by != "person":
            study.priority = NEEDS_CHECK_PRIORITY
            study.priority_set_by = "model"
        if job.rerun:  # another image arrived meanwhile: look at all of them again
            job.status = "pending"
            job.attempts = 0
            job.rerun = False
            study.status = "queued"
        return study


def requeue_failed(bind: Bind, uid: str | None = None) -> list[str]:
    """Give failed studies a new pending job; return their Study Instance UIDs.

    Args:
        bind: engine or session.
        uid: only this study; None for every failed study.

    Raises:
        WorklistError: ``uid`` names no study, or that study has not failed.
    """
    now = utcnow()
    with _transaction(bind) as session:
        if uid is not None:
            study = _study_by_uid(session, uid)
            if study.status != "failed":
                raise WorklistError(f"study {uid} is {study.status}, not failed; only failed "
                                    "studies are re-queued")
            studies = [study]
        else:
            studies = list(session.scalars(
                select(Study).where(Study.status == "failed").with_for_update()).unique())
        for study in studies:
            _requeue(session, study, now, "re-queued on request")
        return [s.study_instance_uid for s in studies]


def record_output_errors(bind: Bind, uid: str, errors: Mapping[str, str]) -> Study:
    """Record which structured outputs of a scored study could not be built (none: clear).

    Each call counts one try (``output_attempts``); the user-visible ``error`` says what
    is missing while tries remain.
    """
    with _transaction(bind) as session:
        study = _study_by_uid(session, uid)
        if not errors:
            study.output_errors = None
            if study.status == "scored":
                study.error = None
            return study
        study.output_errors = dict(errors)
        study.output_attempts = (study.output_attempts or 0) + 1
        left = OUTPUT_MAX_ATTEMPTS - study.output_attempts
        study.error = ("outputs not built: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
                       + (f" (retried later, {left} tries left)" if left > 0 else
                          " (gave up; re-queue the study after fixing its header)"))
        return study


def update_result_outputs(bind: Bind, uid: str, *, sr_path: str | None,
                          heatmap_paths: Mapping[str, str]) -> Result:
    """Fill in outputs built on a retry into the study's latest result.

    Raises:
        WorklistError: no such study, or it has no result.
    """
    with _transaction(bind) as session:
        study = _study_by_uid(session, uid)
        result = session.scalars(select(Result).where(Result.study_fk == study.id)
                                 .order_by(Result.id.desc()).limit(1)).first()
        if result is None:
            raise WorklistError(f"study {uid} has no result to add outputs to")
        if sr_path:
            result.sr_path = sr_path
        if heatmap_paths:
            result.heatmap_paths = {**(result.heatmap_paths or {}), **heatmap_paths}
        return result


def studies_missing_outputs(bind: Bind, *, limit: int = 10) -> list[Study]:
    """Scored studies with outputs still to build and tries left, oldest first."""
    with _transaction(bind) as session:
        return list(session.scalars(
            select(Study)
            .where(Study.status == "scored", Study.output_errors.is_not(None),
                   Study.output_attempts < OUTPUT_MAX_ATTEMPTS)
            .order_by(Study.scored_at, Study.id).limit(limit)).unique())


def get_job(bind: Bind, job_id: int) -> Job | None:
    """Return a job by id, or None."""
    with _transaction(bind) as session:
        return session.get(Job, job_id)


def get_study(bind: Bind, uid: str) -> Study | None:
    """Return the study with this Study Instance UID, or None."""
    with _transaction(bind) as session:
        return session.scalars(select(Study).where(Study.study_instance_uid == uid)).first()


def list_studies(
    bind: Bind,
    status: str | Iterable[str] | None = None,
    *,
    limit: int = 100,
    offset: int = 0,
) -> list[Study]:
    """List studies, highest priority first, then the longest waiting.

    Args:
        bind: engine or session.
        status: one status or several (see :data:`STUDY_STATUSES`); None for all.
        limit: at most this many studies.
        offset: skip this many (for paging).
    """
    statuses = [status] if isinstance(status, str) else list(status or [])
    unknown = [s for s in statuses if s not in STUDY_STATUSES]
    if unknown:
        raise ValueError(f"unknown study status {unknown}; use one of {STUDY_STATUSES}")
    stmt = select(Study).order_by(Study.priority.desc(), Study.received_at, Study.id)
    if statuses:
        stmt = stmt.where(Study.status.in_(statuses))
    with _transaction(bind) as session:
        return list(session.scalars(stmt.limit(limit).offset(offset)).unique())


def count_studies(bind: Bind) -> dict[str, int]:
    """Return the number of studies in each status (every status present, maybe 0)."""
    counts = dict.fromkeys(STUDY_STATUSES, 0)
    with _transaction(bind) as session:
        for status, n in session.execute(
            select(Study.status, func.count()).group_by(Study.status)
        ):
            counts[status] = n
    return counts


_Row = TypeVar("_Row", Instance, Result, Review)


def _study_rows(bind: Bind, uid: str, model: type[_Row], newest_first: bool) -> list[_Row]:
    """The rows of ``model`` that belong to the study ``uid``, by id."""
    with _transaction(bind) as session:
        study = _study_by_uid(session, uid)
        order = model.id.desc() if newest_first else model.id
        return list(session.scalars(select(model).where(model.study_fk == study.id)
                                    .order_by(order)))


def list_instances(bind: Bind, uid: str) -> list[Instance]:
    """Return a study's instances in arrival order (paths relative to the data dir)."""
    return _study_rows(bind, uid, Instance, newest_first=False)


def list_results(bind: Bind, uid: str) -> list[Result]:
    """Return a study's model results, newest first."""
    return _study_rows(bind, uid, Result, newest_first=True)


def set_priority(bind: Bind, uid: str, priority: int, by: str = "person") -> Study:
    """Set a study's priority.

    Args:
        bind: engine or session.
        uid: Study Instance UID.
        priority: 0..100, higher is read first.
        by: ``"person"`` (always applied) or ``"model"`` (never lowers a person's).

    Raises:
        ValueError: bad priority or ``by``.
        WorklistError: no such study.
    """
    _check_priority(priority)
    if by not in ("person", "model"):
        raise ValueError(f"by must be 'person' or 'model', got {by!r}")
    with _transaction(bind) as session:
        study = _study_by_uid(session, uid)
        if by == "person":
            study.priority = priority
            study.priority_set_by = "person"
        else:
            _apply_model_priority(study, priority)
        return study


def add_review(
    bind: Bind,
    uid: str,
    *,
    reviewer: str,
    action: str,
    text: str | None = None,
    priority: int | None = None,
) -> Review:
    """Record a reviewer's action; a priority given is applied as a person's.

    Raises:
        ValueError: unknown action, or ``reprioritise`` without a priority.
        WorklistError: no such study.
    """
    if action not in REVIEW_ACTIONS:
        raise ValueError(f"unknown review action {action!r}; use one of {REVIEW_ACTIONS}")
    if action == "reprioritise" and priority is None:
        raise ValueError("a 'reprioritise' review needs a priority")
    if priority is not None:
        _check_priority(priority)
    with _transaction(bind) as session:
        study = _study_by_uid(session, uid)
        review = Review(
            study_fk=study.id,
            reviewer=reviewer,
            action=action,
            text=text,
            priority=priority,
            created_at=utcnow(),
        )
        session.add(review)
        if priority is not None:
            study.priority = priority
            study.priority_set_by = "person"
        session.flush()
        return review


def list_reviews(bind: Bind, uid: str) -> list[Review]:
    """Return a study's reviews, oldest first."""
    return _study_rows(bind, uid, Review, newest_first=False)


def delivery_backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed try (5, 10, 20, 40 ...)."""
    return DELIVERY_BACKOFF_BASE_S * 2 ** max(attempts - 1, 0)


def queue_delivery(
    bind: Bind,
    uid: str,
    kind: str,
    destination: str,
    *,
    payload_path: str | None = None,
    now: dt.datetime | None = None,
) -> Delivery:
    """Queue a result to send (due at once).

    Args:
        bind: engine or session.
        uid: Study Instance UID.
        kind: ``"dicom-sr"``, ``"dicom-sc"`` or ``"hl7"``.
        destination: e.g. ``"PACS@10.0.0.5:104"`` or ``"ris.example.org:2575"``.
        payload_path: the file to send, relative to the data directory.
        now: the current time (for tests).
    """
    if kind not in DELIVERY_KINDS:
        raise ValueError(f"unknown delivery kind {kind!r}; use one of {DELIVERY_KINDS}")
    now = now or utcnow()
    with _transaction(bind) as session:
        study = _study_by_uid(session, uid)
        delivery = Delivery(
            study_fk=study.id,
            kind=kind,
            destination=destination,
            payload_path=payload_path,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            updated_at=now,
        )
        session.add(delivery)
        session.flush()
        return delivery


def due_deliveries(
    bind: Bind, now: dt.datetime | None = None, *, limit: int = 50
) -> list[Delivery]:
    """Return pending deliveries whose next attempt is due, oldest due first."""
    now = now or utcnow()
    with _transaction(bind) as session:
        return list(
            session.scalars(
                select(Delivery)
                .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
                .order_by(Delivery.next_attempt_at, Delivery.id)
                .limit(limit)
            )
        )


def list_deliveries(
    bind: Bind,
    status: str | None = None,
    uid: str | None = None,
    *,
    limit: int = 500,
) -> list[Delivery]:
    """List deliveries, newest first (read-only).

    Args:
        bind: engine or session.
        status: only this status (see :data:`DELIVERY_STATUSES`); None for all.
        uid: only this study's (Study Instance UID); None for every study.
        limit: at most this many.

    Raises:
        ValueError: unknown status.
        WorklistError: ``uid`` names no study.
    """
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValueError(f"unknown delivery status {status!r}; use one of {DELIVERY_STATUSES}")
    stmt = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Delivery.status == status)
    with _transaction(bind) as session:
        if uid is not None:
            stmt = stmt.where(Delivery.study_fk == _study_by_uid(session, uid).id)
        return list(session.scalars(stmt))


def mark_delivery(
    bind: Bind,
    delivery_id: int,
    ok: bool,
    error: str | None = None,
    *,
    now: dt.datetime | None = None,
) -> Delivery:
    """Record the outcome of a delivery attempt.

    A failure schedules the next try after :func:`delivery_backoff`; after
    :data:`DELIVERY_MAX_ATTEMPTS` failures the delivery is marked failed.
    """
    now = now or utcnow()
    with _transaction(bind) as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            raise WorklistError(f"no delivery {delivery_id} on the worklist")
        delivery.updated_at = now
        if ok:
            delivery.status = "sent"
            delivery.last_error = None
            return delivery
        delivery.attempts += 1
        delivery.last_error = error or "unknown error"
        if delivery.attempts >= DELIVERY_MAX_ATTEMPTS:
            delivery.status = "failed"
            logger.error(
                "delivery %d to %s gave up after %d attempts: %s",
                delivery.id, delivery.destination, delivery.attempts, delivery.last_error,
            )
        else:
            delivery.next_attempt_at = now + dt.timedelta(
                seconds=delivery_backoff(delivery.attempts)
            )
        return delivery
