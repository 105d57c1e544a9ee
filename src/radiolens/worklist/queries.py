"""Read-only worklist queries for the workspace: filtered pages, one study whole, changes.

Callers get plain ORM objects detached from their session; nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, func, or_, select
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist._session import Bind, _study_rows, _transaction
from radiolens.worklist.db import reading
from radiolens.worklist.models import (
    STUDY_STATUSES,
    Delivery,
    Instance,
    Patient,
    Result,
    Review,
    Study,
)

__all__ = ["VIEWS", "StudyDetail", "StudyPage", "changed_studies", "count_studies",
           "get_study", "list_instances", "list_results", "list_studies", "study_detail",
           "study_page"]

#: Worklist views: which studies each shows.
VIEWS: tuple[str, ...] = ("unread", "flagged", "failed", "needs-check", "reviewed", "mine",
                          "all")
#: Statuses of a study that still waits for a radiologist's read.
_UNREAD = ("received", "queued", "scoring", "scored", "needs-check", "failed")


@dataclass(frozen=True)
class StudyPage:
    """One page of the worklist and the number of studies the view holds."""

    studies: list[Study]
    total: int


@dataclass(frozen=True)
class StudyDetail:
    """A study with everything the study page shows, read in one transaction."""

    study: Study
    instances: list[Instance]
    results: list[Result]
    reviews: list[Review]
    deliveries: list[Delivery]


def _view(stmt: Select[Any], view: str, user: str | None) -> Select[Any]:
    if view == "unread":
        return stmt.where(Study.status.in_(_UNREAD))
    if view == "flagged":
        return stmt.where(Study.status == "scored", Study.priority >= 50)
    if view in ("failed", "needs-check", "reviewed"):
        return stmt.where(Study.status == view)
    if view == "mine":
        return stmt.where(Study.reviewed_by == (user or ""))
    return stmt


def study_page(bind: Engine, *, view: str = "all", query: str | None = None,
               user: str | None = None, order: str = "priority", limit: int = 50,
               offset: int = 0) -> StudyPage:
    """A page of the worklist.

    Args:
        view: one of :data:`VIEWS`.
        query: text matched (case-insensitively) against patient id and name, accession
            number, study description and Study Instance UID.
        user: the signed-in user (for the ``mine`` view: studies they signed).
        order: ``priority`` (highest first, then longest waiting) or ``oldest``.

    Raises:
        ValueError: an unknown view or order.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
    if order not in ("priority", "oldest"):
        raise ValueError(f"unknown order {order!r}; use priority or oldest")
    stmt = _view(select(Study).outerjoin(Patient, Study.patient_fk == Patient.id), view, user)
    if query and query.strip():
        like = f"%{query.strip().lower()}%"
        stmt = stmt.where(or_(*(func.lower(col).like(like) for col in (
            Patient.patient_id, Patient.name, Study.accession_number, Study.description,
            Study.study_instance_uid))))
    counted = stmt.with_only_columns(func.count(Study.id)).order_by(None)
    if order == "priority":
        stmt = stmt.order_by(Study.priority.desc(), Study.received_at, Study.id)
    else:
        stmt = stmt.order_by(Study.received_at, Study.id)
    try:
        with Session(reading(bind), expire_on_commit=False) as session:
            total = int(session.scalar(counted) or 0)
            rows = list(session.scalars(stmt.limit(limit).offset(offset)).unique())
    except Exception as exc:
        raise WorklistError(f"worklist database error: {exc}") from exc
    return StudyPage(rows, total)


def study_detail(bind: Engine, uid: str) -> StudyDetail | None:
    """A study and its instances, results and reviews (latest result first), or None."""
    try:
        with Session(reading(bind), expire_on_commit=False) as session:
            study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).first()
            if study is None:
                return None
            fk = study.id
            return StudyDetail(
                study=study,
                instances=list(session.scalars(select(Instance).where(Instance.study_fk == fk)
                                               .order_by(Instance.id))),
                results=list(session.scalars(select(Result).where(Result.study_fk == fk)
                                             .order_by(Result.id.desc()))),
                reviews=list(session.scalars(select(Review).where(Review.study_fk == fk)
                                             .order_by(Review.id))),
                deliveries=list(session.scalars(select(Delivery).where(
                    Delivery.study_fk == fk).order_by(Delivery.id))),
            )
    except Exception as exc:
        raise WorklistError(f"worklist database error: {exc}") from exc


def changed_studies(bind: Engine, since: dt.datetime, *, limit: int = 200
                    ) -> Sequence[Study]:
    """Studies received, scored or reviewed after ``since`` (for the event stream)."""
    stmt = select(Study).where(or_(Study.received_at > since, Study.scored_at > since,
                                   Study.reviewed_at > since)).order_by(Study.id).limit(limit)
    try:
        with Session(reading(bind), expire_on_commit=False) as session:
            return list(session.scalars(stmt).unique())
    except Exception as exc:
        raise WorklistError(f"worklist database error: {exc}") from exc


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



def list_instances(bind: Bind, uid: str) -> list[Instance]:
    """Return a study's instances in arrival order (paths relative to the data dir)."""
    return _study_rows(bind, uid, Instance, newest_first=False)


def list_results(bind: Bind, uid: str) -> list[Result]:
    """Return a study's model results, newest first."""
    return _study_rows(bind, uid, Result, newest_first=True)
