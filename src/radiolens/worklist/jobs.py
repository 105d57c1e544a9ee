"""The job queue: claim (one or a batch), renew, complete, fail or release scoring jobs; outputs.

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
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist._session import (
    Bind,
    _apply_model_priority,
    _check_priority,
    _study_by_uid,
    _transaction,
)
from radiolens.worklist.models import (
    Job,
    Result,
    Study,
    utcnow,
)

logger = logging.getLogger(__name__)

#: Attempts a scoring job gets before its study is marked failed.
DEFAULT_MAX_ATTEMPTS = 3
#: Default lease of a claimed job, in seconds; renew it for long work.
DEFAULT_LEASE_S = 300.0
#: Tries at building a study's missing structured outputs (SR, FHIR, HL7, heatmap).
OUTPUT_MAX_ATTEMPTS = 3
#: The fixed priority of a ``needs-check`` study: below every flagged study (50+), low
#: but above a clearly normal one, so the image is looked at without jumping the queue.
NEEDS_CHECK_PRIORITY = 10


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
        study.outputs_pending = None
        logger.info("study %s re-queued: %s", study.study_instance_uid, why)
    elif active.status == "running":
        active.rerun = True
        active.updated_at = now



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
    jobs = claim_jobs(bind, owner, lease_seconds, limit=1, now=now)
    return jobs[0] if jobs else None


def claim_jobs(
    bind: Bind,
    owner: str,
    lease_seconds: float = DEFAULT_LEASE_S,
    *,
    limit: int = 1,
    now: dt.datetime | None = None,
) -> list[Job]:
    """Atomically claim up to ``limit`` jobs, in the order :func:`claim_job` hands them out.

    Whatever is claimable now is claimed (never waits for more). Each job is claimed as
    :func:`claim_job` claims one: an attempt counted, a lease of its own, and one past its
    last attempt marked failed instead. All in one short transaction.

    Raises:
        ValueError: ``limit`` is below 1.

    Example:
        >>> jobs = claim_jobs(engine, "worker-1", 30, limit=8)  # doctest: +SKIP
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    now = now or utcnow()
    claimed: list[Job] = []
    with _transaction(bind) as session:
        while len(claimed) < limit:
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
                break
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
            claimed.append(job)
            session.flush()  # the next look no longer sees this job as claimable
    return claimed


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
    image_check: str | None = None,
    lungs: Mapping[str, Any] | None = None,
    outputs_pending: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> Result:
    """Store a model result for a claimed job and mark the study scored.

    ``outputs_pending``: the standard outputs of this result still to be built (see
    :func:`complete_outputs`), recorded in the same transaction, so a worker that stops
    before building them finds them again (:func:`studies_missing_outputs`).

    The study's priority becomes the model's, unless a person set a higher one.
    If an instance arrived while the job ran, the job goes back to pending.
    ``image_check`` (why the lung mask looks implausible) and ``lungs`` (the lung
    segmentation's figures, see :class:`~radiolens.worklist.Study`) replace the study's.

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
        study.image_check = image_check or None
        study.lungs = dict(lungs) if lungs else None
        study.outputs_pending = [str(n) for n in outputs_pending] or None
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
        study.image_check = None
        study.lungs = None
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
        _set_output_errors(study, errors)
        return study


def _set_output_errors(study: Study, errors: Mapping[str, str]) -> None:
    if not errors:
        study.output_errors = None
        if study.status == "scored":
            study.error = None
        return
    study.output_errors = dict(errors)
    study.output_attempts = (study.output_attempts or 0) + 1
    left = OUTPUT_MAX_ATTEMPTS - study.output_attempts
    study.error = ("outputs not built: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
                   + (f" (retried later, {left} tries left)" if left > 0 else
                      " (gave up; re-queue the study after fixing its header)"))


def complete_outputs(bind: Bind, uid: str, *, errors: Mapping[str, str],
                     sr_path: str | None = None,
                     heatmap_paths: Mapping[str, str] | None = None,
                     lungs: Mapping[str, Any] | None = None,
                     image_check: str | None = None,
                     draft_text: str | None = None) -> Study:
    """Record that the pending outputs of a study's latest result were built: their
    paths into the result, what failed into ``output_errors`` (as
    :func:`record_output_errors`), ``outputs_pending`` cleared; one transaction.
    ``lungs`` (with ``image_check``) and ``draft_text``: the lung figures and the draft
    that says what they mean, when they were made with the outputs.

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
        if draft_text:
            result.draft_text = draft_text
        if lungs:
            study.lungs = dict(lungs)
            study.image_check = image_check or None
        study.outputs_pending = None
        _set_output_errors(study, errors)
        return study


def studies_missing_outputs(bind: Bind, *, limit: int = 10,
                            skip: Sequence[str] = ()) -> list[Study]:
    """Scored studies with outputs still to build, oldest first: outputs that failed
    (with tries left), or pending ones a worker never built (``outputs_pending``).
    ``skip``: study UIDs to leave out (those this worker is about to build)."""
    query = (select(Study)
             .where(Study.status == "scored",
                    or_(Study.outputs_pending.is_not(None),
                        and_(Study.output_errors.is_not(None),
                             Study.output_attempts < OUTPUT_MAX_ATTEMPTS))))
    if skip:
        query = query.where(Study.study_instance_uid.not_in(list(skip)))
    with _transaction(bind) as session:
        return list(session.scalars(
            query.order_by(Study.scored_at, Study.id).limit(limit)).unique())


def get_job(bind: Bind, job_id: int) -> Job | None:
    """Return a job by id, or None."""
    with _transaction(bind) as session:
        return session.get(Job, job_id)


