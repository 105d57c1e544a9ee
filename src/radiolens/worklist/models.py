"""SQLAlchemy 2 declarative models of the triage worklist.

Every timestamp is a timezone-aware UTC :class:`~datetime.datetime`; SQLite, which has
no time zone type, stores it as naive UTC and :class:`UTCDateTime` puts the zone back.
The schema carries a version in the ``meta`` table, checked by :func:`create_or_migrate`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from radiolens.errors import WorklistError

__all__ = [
    "DELIVERY_KINDS",
    "DELIVERY_STATUSES",
    "JOB_STATUSES",
    "PRIORITY_SOURCES",
    "REVIEW_ACTIONS",
    "SCHEMA_VERSION",
    "STUDY_STATUSES",
    "Base",
    "Delivery",
    "Instance",
    "Job",
    "Meta",
    "Patient",
    "Result",
    "Review",
    "Study",
    "UTCDateTime",
    "create_or_migrate",
    "utcnow",
]

logger = logging.getLogger(__name__)

#: Version of the database layout; bump it and add a step to ``_MIGRATIONS`` on change.
SCHEMA_VERSION = 5

#: ``needs-check``: an image failed the input gate; it is stored, not scored, and the
#: reason is in ``Study.error`` (see :func:`radiolens.worklist.mark_needs_check`).
STUDY_STATUSES: tuple[str, ...] = ("received", "queued", "scoring", "scored", "failed",
                                   "needs-check", "reviewed")
JOB_STATUSES: tuple[str, ...] = ("pending", "running", "done", "failed")
PRIORITY_SOURCES: tuple[str, ...] = ("model", "person")
#: ``sign`` and ``amend`` are signed reads (:mod:`radiolens.worklist.reviews`); ``accept``
#: and ``correct`` are kept for reviews recorded before version 3.
REVIEW_ACTIONS: tuple[str, ...] = ("sign", "amend", "accept", "correct", "reprioritise")
DELIVERY_KINDS: tuple[str, ...] = ("dicom-sr", "dicom-sc", "dicom-seg", "hl7")
DELIVERY_STATUSES: tuple[str, ...] = ("pending", "sent", "failed")


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A DateTime column that only accepts aware datetimes and always returns UTC ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of the worklist tables."""

    # none_as_null: Python None is SQL NULL, not the JSON text 'null' (which `IS NOT
    # NULL` matches: a study whose output errors were cleared looked unfinished forever)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime, dict[str, Any]: JSON(none_as_null=True),
        list[Any]: JSON(none_as_null=True),
    }


class Meta(Base):
    """Key/value facts about the database itself (``schema_version``)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class Patient(Base):
    """A patient as identified by the sending PACS (Patient ID)."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(324))
    sex: Mapped[str | None] = mapped_column(String(16))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)


class Study(Base):
    """A study on the worklist: its triage status, priority and latest findings.

    ``priority`` runs from 0 to 100, higher is read first. ``priority_set_by`` says who
    set it (``"model"`` or ``"person"``); the service never lowers a person's priority.
    """

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_fk: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    accession_number: Mapped[str | None] = mapped_column(String(64))
    study_date: Mapped[dt.date | None] = mapped_column(Date)
    modality: Mapped[str | None] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    priority_set_by: Mapped[str | None] = mapped_column(String(16))
    flags: Mapped[list[Any]] = mapped_column(default=list)
    findings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    scored_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(64))
    #: structured outputs (``sr``, ``fhir``, ``hl7``, ``heatmap``) that could not be built,
    #: name -> reason; retried by the worker up to ``OUTPUT_MAX_ATTEMPTS`` times.
    output_errors: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    output_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: the user who signed the read in force, and when (status ``reviewed``)
    reviewed_by: Mapped[str | None] = mapped_column(String(128))
    reviewed_at: Mapped[dt.datetime | None]
    #: why the lung mask of the scored image looks implausible ("; "-joined reasons),
    #: shown as "check image: ..."; the study is scored all the same
    image_check: Mapped[str | None] = mapped_column(Text)
    #: the lung segmentation of the latest result: ``model``, ``sop_instance_uid`` (the
    #: image the mask is of), ``quality`` (``MaskQuality.as_dict()``), ``heat_in_lungs``
    #: (flagged finding -> share of its heatmap inside the lungs), ``attention_warning``
    lungs: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    #: standard outputs of the latest result still to be built (``sr``, ``fhir``, ``hl7``,
    #: ``lung_seg``, ``heatmap_sc``): the study is on the worklist before them, and a
    #: worker that stopped in between builds them when it starts again
    outputs_pending: Mapped[list[Any] | None] = mapped_column(default=None)

    patient: Mapped[Patient | None] = relationship(lazy="joined")

    __table_args__ = (Index("ix_studies_order", "priority", "received_at"),)


class Instance(Base):
    """One stored DICOM instance (file path relative to the data directory)."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_instance_uid: Mapped[str | None] = mapped_column(String(64))
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)


class Job(Base):
    """A scoring job for one study, claimed by a worker under a time-limited lease.

    ``rerun`` is set when an instance arrives while the job runs: completing the job
    then puts it back to ``pending`` so the study is scored again with every image.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    rerun: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Result(Base):
    """One model result for a study (a study re-scored keeps every result)."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(64))
    findings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    flags: Mapped[list[Any]] = mapped_column(default=list)
    thresholds: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    heatmap_paths: Mapped[dict[str, Any]] = mapped_column(default=dict)
    draft_text: Mapped[str | None] = mapped_column(Text)
    sr_path: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Review(Base):
    """A radiologist's action on a study: a signed read (``sign``, ``amend``) or a
    reprioritisation. A signed read names the result it was made on, a call per finding
    (``present`` / ``absent`` / ``uncertain``), optional boxes, and its version."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    result_fk: Mapped[int | None] = mapped_column(ForeignKey("results.id"))
    calls: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    boxes: Mapped[list[Any] | None] = mapped_column(default=None)
    version: Mapped[int | None] = mapped_column(Integer)


class Delivery(Base):
    """A result to send back (DICOM SR/SC to a PACS, HL7 to a RIS), retried with backoff."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(255))
    payload_path: Mapped[str | None] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def _columns(session: Session, table: str) -> set[str]:
    from sqlalchemy import inspect

    return {c["name"] for c in inspect(session.connection()).get_columns(table)}


def _add_output_columns(session: Session) -> None:
    """Version 1 -> 2: ``studies.output_errors`` and ``studies.output_attempts``."""
    from sqlalchemy import text

    present = _columns(session, "studies")
    if "output_errors" not in present:
        session.execute(text("ALTER TABLE studies ADD COLUMN output_errors JSON"))
    if "output_attempts" not in present:
        session.execute(text("ALTER TABLE studies ADD COLUMN output_attempts INTEGER "
                             "NOT NULL DEFAULT 0"))


def _add_columns(session: Session, table: str, names: tuple[str, ...]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for model columns, typed for the database's dialect."""
    from sqlalchemy import text

    present = _columns(session, table)
    dialect = session.get_bind().dialect
    for name in names:
        if name in present:  # a table made by create_all of this version has it already
            continue
        column = Base.metadata.tables[table].c[name]
        session.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} "
                             f"{column.type.compile(dialect=dialect)}"))


def _add_review_columns(session: Session) -> None:
    """Version 2 -> 3: signed reviews (result, calls, boxes, version; who signed, when)."""
    _add_columns(session, "studies", ("reviewed_by", "reviewed_at"))
    _add_columns(session, "reviews", ("result_fk", "calls", "boxes", "version"))


def _add_lung_columns(session: Session) -> None:
    """Version 3 -> 4: the lung check of a scored study (``image_check``, ``lungs``)."""
    _add_columns(session, "studies", ("image_check", "lungs"))


#: JSON columns that may hold no value; before version 5 clearing one wrote JSON 'null'
_NULLABLE_JSON = {"studies": ("output_errors", "lungs"), "reviews": ("calls", "boxes")}


def _add_pending_outputs_column(session: Session) -> None:
    """Version 4 -> 5: outputs still to build after scoring (``outputs_pending``); the
    JSON text 'null' that earlier versions wrote for "none" becomes SQL NULL."""
    from sqlalchemy import text

    _add_columns(session, "studies", ("outputs_pending",))
    for table, names in _NULLABLE_JSON.items():
        for name in names:
            session.execute(text(f"UPDATE {table} SET {name} = NULL "
                                 f"WHERE CAST({name} AS TEXT) = 'null'"))


# from-version -> function bringing the schema to from-version + 1
_MIGRATIONS: dict[int, Any] = {1: _add_output_columns, 2: _add_review_columns,
                               3: _add_lung_columns, 4: _add_pending_outputs_column}


def create_or_migrate(engine: Engine) -> int:
    """Create missing tables and record or check the schema version.

    Args:
        engine: an engine from :func:`radiolens.worklist.make_engine`.

    Returns:
        The schema version of the database (always :data:`SCHEMA_VERSION`).

    Raises:
        WorklistError: the database was written by a newer radiolens, or cannot be
            opened or migrated.
    """
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            row = session.scalars(select(Meta).where(Meta.key == "schema_version")).first()
            if row is None:
                session.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                return SCHEMA_VERSION
            found = int(row.value)
            if found > SCHEMA_VERSION:
                raise WorklistError(
                    f"the worklist database has schema version {found}, newer than this "
                    f"radiolens understands ({SCHEMA_VERSION}); upgrade radiolens"
                )
            while found < SCHEMA_VERSION:
                step = _MIGRATIONS.get(found)
                if step is None:
                    raise WorklistError(
                        f"no migration from worklist schema version {found}; "
                        "export the worklist and create a new database"
                    )
                step(session)
                found += 1
                logger.info("migrated the worklist schema to version %d", found)
            row.value = str(found)
            return found
    except WorklistError:
        raise
    except Exception as exc:
        raise WorklistError(
            f"cannot create or open the worklist database ({engine.url!r}): {exc}"
        ) from exc
