"""Signed reviews: a radiologist's structured read of a study, with amendments kept.

A review is signed against the result the reviewer saw (``result_id``): when the study
was re-scored in the meantime, or another review was signed first, the review is refused
with :class:`~radiolens.errors.ReviewConflict` (HTTP 409), so a slow screen can never
sign the wrong read. Each finding of the result gets a call (``present``, ``absent`` or
``uncertain``) and the report text is the reviewer's. A signed study is ``reviewed``; an
amendment is a new version, and every version stays (who, what, when).

Example:
    >>> sign_review(engine, uid, reviewer="ada", result_id=7,
    ...             findings={"Pneumonia": "present"}, text="Right lower lobe pneumonia.")
    ... # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from radiolens.errors import ReviewConflict, WorklistError
from radiolens.worklist._session import (
    Bind,
    _apply_model_priority,
    _check_priority,
    _study_by_uid,
    _study_rows,
    _transaction,
)
from radiolens.worklist.models import REVIEW_ACTIONS, Result, Review, Study, utcnow

__all__ = [
    "FINDING_CALLS",
    "SIGNING_ACTIONS",
    "add_review",
    "latest_signed_review",
    "list_reviews",
    "set_priority",
    "sign_review",
    "signed_reviews",
]

#: The calls a reviewer makes on each finding.
FINDING_CALLS: tuple[str, ...] = ("present", "absent", "uncertain")
#: Review actions that sign a report (the first read, then amendments).
SIGNING_ACTIONS: tuple[str, ...] = ("sign", "amend")
#: Statuses of a study the model could not score; a reviewer can still close it.
_UNSCORABLE = ("needs-check", "failed")
#: Longest report text accepted.
MAX_TEXT = 100_000


def _check_findings(findings: Mapping[str, str], scored: Sequence[str]) -> dict[str, str]:
    unknown = sorted(set(findings) - set(scored))
    if unknown:
        raise ValueError(f"findings {', '.join(unknown)} are not in the result reviewed "
                         f"(it scored {', '.join(scored) or 'nothing'})")
    missing = [name for name in scored if name not in findings]
    if missing:
        raise ValueError(f"give a call (present / absent / uncertain) for every finding; "
                         f"missing: {', '.join(missing)}")
    bad = {k: v for k, v in findings.items() if v not in FINDING_CALLS}
    if bad:
        name, value = next(iter(bad.items()))
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(FINDING_CALLS)}")
    return {name: findings[name] for name in scored}


def _check_boxes(boxes: Sequence[Mapping[str, Any]] | None, scored: Sequence[str]
                 ) -> list[dict[str, Any]]:
    out = []
    for i, box in enumerate(boxes or []):
        try:
            finding = str(box["finding"])
            x, y, w, h = (float(box[k]) for k in "xywh")
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"box {i + 1} needs finding, x, y, w and h (numbers, in image "
                             "pixels)") from None
        if finding not in scored:
            raise ValueError(f"box {i + 1}: {finding!r} is not a finding of the result")
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise ValueError(f"box {i + 1}: x and y must be >= 0, w and h > 0")
        out.append({"finding": finding, "sop_instance_uid": str(box.get("sop_instance_uid", "")),
                    "x": x, "y": y, "w": w, "h": h})
    return out


def sign_review(
    bind: Engine,
    uid: str,
    *,
    reviewer: str,
    result_id: int | None,
    findings: Mapping[str, str],
    text: str,
    boxes: Sequence[Mapping[str, Any]] | None = None,
    amend: bool = False,
    now: dt.datetime | None = None,
) -> Review:
    """Sign (or amend) the read of a study against the result the reviewer saw.

    Args:
        bind: the worklist engine.
        uid: the StudyInstanceUID.
        reviewer: the signed-in user's name (never a typed name).
        result_id: the id of the result the reviewer saw; it must be the study's latest.
            None closes a study the model could not score (``needs-check`` or ``failed``:
            "image not diagnostic, repeat"): there are no findings to call then.
        findings: a call for every finding of that result.
        text: the report as the reviewer signs it.
        boxes: optional boxes around findings (image pixel coordinates).
        amend: True to amend a signed read (a new version); False for the first read.

    Raises:
        ReviewConflict: the study was re-scored since, or its signed state is not what
            ``amend`` expects.
        ValueError: a call, box or text is invalid.
        WorklistError: no such study, or the database failed.
    """
    if not text or not text.strip():
        raise ValueError("the report text is empty: write (or keep) the report you sign")
    if len(text) > MAX_TEXT:
        raise ValueError(f"the report text is longer than {MAX_TEXT} characters")
    when = now or utcnow()
    try:
        with Session(bind, expire_on_commit=False) as session, session.begin():
            study = session.scalars(select(Study).where(Study.study_instance_uid == uid)
                                    .with_for_update()).first()
            if study is None:
                raise WorklistError(f"no study {uid} on the worklist")
            latest = session.scalars(select(Result).where(Result.study_fk == study.id)
                                     .order_by(Result.id.desc()).limit(1)).first()
            if latest is None and result_id is None and study.status in _UNSCORABLE:
                scored: list[str] = []
            elif latest is None:
                raise ReviewConflict(
                    "the study has no AI result to review yet" if study.status not in
                    _UNSCORABLE else "the study has no AI result: sign it without result_id")
            elif latest.id != result_id:
                raise ReviewConflict(
                    f"the study was scored again since result {result_id} was shown "
                    f"(now result {latest.id}): reload it and review what is on screen")
            else:
                scored = list(latest.findings)
            signed = session.scalar(select(func.count()).select_from(Review).where(
                Review.study_fk == study.id, Review.action.in_(SIGNING_ACTIONS))) or 0
            if signed and not amend:
                last = session.scalars(select(Review).where(
                    Review.study_fk == study.id, Review.action.in_(SIGNING_ACTIONS))
                    .order_by(Review.id.desc()).limit(1)).one()
                raise ReviewConflict(
                    f"already signed by {last.reviewer} at "
                    f"{last.created_at.isoformat(timespec='seconds')}: amend it instead")
            if amend and not signed:
                raise ReviewConflict("there is no signed read to amend: sign it first")
            review = Review(
                study_fk=study.id, reviewer=reviewer, action="amend" if amend else "sign",
                text=text, result_fk=latest.id if latest is not None else None,
                calls=_check_findings(findings, scored),
                boxes=_check_boxes(boxes, scored), version=signed + 1, created_at=when)
            session.add(review)
            study.status = "reviewed"
            study.reviewed_by = reviewer
            study.reviewed_at = when
            session.flush()
            return review
    except (ReviewConflict, ValueError, WorklistError):
        raise
    except Exception as exc:
        raise WorklistError(f"worklist database error: {exc}") from exc


def signed_reviews(bind: Engine, uid: str) -> list[Review]:
    """Every signed version of a study's read, oldest first (the audit trail)."""
    with Session(bind, expire_on_commit=False) as session:
        study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).first()
        if study is None:
            raise WorklistError(f"no study {uid} on the worklist")
        return list(session.scalars(select(Review).where(
            Review.study_fk == study.id, Review.action.in_(SIGNING_ACTIONS))
            .order_by(Review.id)))


def latest_signed_review(bind: Engine, uid: str) -> Review | None:
    """The version of the read in force, or None when the study is unread."""
    versions = signed_reviews(bind, uid)
    return versions[-1] if versions else None


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
