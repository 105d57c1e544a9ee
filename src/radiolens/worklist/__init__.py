"""The triage worklist: SQLAlchemy models and repository functions.

Studies arrive from the receiver (:func:`record_instance`), workers claim scoring jobs
(:func:`claim_job`, :func:`complete_job`, :func:`fail_job`), the web UI lists and
reprioritises studies, and results are sent back through deliveries with backoff.
Needs SQLAlchemy 2 (``pip install 'radiolens[serve]'``); never imports torch.

Example:
    >>> from radiolens.worklist import open_worklist, claim_job, list_studies
    >>> engine = open_worklist("data/worklist.db")  # doctest: +SKIP
    >>> job = claim_job(engine, owner="worker-1", lease_seconds=120)  # doctest: +SKIP
    >>> [s.study_instance_uid for s in list_studies(engine, status="scored")]  # doctest: +SKIP
"""

from __future__ import annotations

from radiolens.worklist import accounts  # noqa: F401  (registers the account tables)
from radiolens.worklist.db import (
    BUSY_TIMEOUT_S,
    DB_FILENAME,
    default_db_path,
    make_engine,
    open_worklist,
)
from radiolens.worklist.deliveries import (
    DELIVERY_BACKOFF_BASE_S,
    DELIVERY_MAX_ATTEMPTS,
    delivery_backoff,
    due_deliveries,
    list_deliveries,
    mark_delivery,
    queue_delivery,
)
from radiolens.worklist.intake import (
    record_instance,
)
from radiolens.worklist.jobs import (
    DEFAULT_LEASE_S,
    DEFAULT_MAX_ATTEMPTS,
    NEEDS_CHECK_PRIORITY,
    OUTPUT_MAX_ATTEMPTS,
    claim_job,
    claim_jobs,
    complete_job,
    complete_outputs,
    fail_job,
    get_job,
    mark_needs_check,
    record_output_errors,
    release_job,
    renew_lease,
    requeue_failed,
    studies_missing_outputs,
)
from radiolens.worklist.models import (
    DELIVERY_KINDS,
    DELIVERY_STATUSES,
    JOB_STATUSES,
    PRIORITY_SOURCES,
    REVIEW_ACTIONS,
    SCHEMA_VERSION,
    STUDY_STATUSES,
    Base,
    Delivery,
    Instance,
    Job,
    Meta,
    Patient,
    Result,
    Review,
    Study,
    create_or_migrate,
    utcnow,
)
from radiolens.worklist.queries import (
    count_studies,
    get_study,
    list_instances,
    list_results,
    list_studies,
)
from radiolens.worklist.reviews import (
    add_review,
    list_reviews,
    set_priority,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "DB_FILENAME",
    "DEFAULT_LEASE_S",
    "DEFAULT_MAX_ATTEMPTS",
    "DELIVERY_BACKOFF_BASE_S",
    "DELIVERY_KINDS",
    "DELIVERY_MAX_ATTEMPTS",
    "DELIVERY_STATUSES",
    "JOB_STATUSES",
    "NEEDS_CHECK_PRIORITY",
    "OUTPUT_MAX_ATTEMPTS",
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
    "add_review",
    "claim_job",
    "claim_jobs",
    "complete_job",
    "complete_outputs",
    "count_studies",
    "create_or_migrate",
    "default_db_path",
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
    "make_engine",
    "mark_delivery",
    "mark_needs_check",
    "open_worklist",
    "queue_delivery",
    "record_instance",
    "record_output_errors",
    "release_job",
    "renew_lease",
    "requeue_failed",
    "set_priority",
    "studies_missing_outputs",
    "utcnow",
]
