"""Deliveries: results to send back to a PACS or RIS, retried with backoff."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from radiolens.errors import WorklistError
from radiolens.worklist._session import (
    Bind,
    _study_by_uid,
    _transaction,
)
from radiolens.worklist.models import (
    DELIVERY_KINDS,
    DELIVERY_STATUSES,
    Delivery,
    utcnow,
)

logger = logging.getLogger(__name__)

#: A failed delivery waits ``DELIVERY_BACKOFF_BASE_S * 2 ** (attempts - 1)`` seconds.
DELIVERY_BACKOFF_BASE_S = 5.0
#: Failed attempts after which a delivery is given up (status ``failed``).
DELIVERY_MAX_ATTEMPTS = 5


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
