"""Repository behaviour: instances, jobs and leases, priorities, reviews, deliveries."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist import (
    DELIVERY_MAX_ATTEMPTS,
    Instance,
    Job,
    add_review,
    claim_job,
    complete_job,
    count_studies,
    delivery_backoff,
    due_deliveries,
    fail_job,
    get_job,
    get_study,
    list_results,
    list_reviews,
    list_studies,
    mark_delivery,
    queue_delivery,
    renew_lease,
    set_priority,
    utcnow,
)

from ._claimer import claim_all
from .conftest import add_instance, both_backends

# every behaviour on SQLite and on PostgreSQL (skipped, with the reason, without a server)
pytestmark = both_backends


def _jobs(engine: Engine) -> list[Job]:
    with Session(engine) as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def _done(engine: Engine | Session, job_id: int, owner: str, priority: int = 10) -> None:
    complete_job(engine, job_id, owner, model="m", model_version="1", findings={"Mass": 0.7},
                 flags=["Mass"], priority=priority)


def test_duplicate_instance_is_recorded_once(engine: Engine) -> None:
    study, created = add_instance(engine, "1", "1")
    again, created_again = add_instance(engine, "1", "1")
    assert created and not created_again
    assert again.id == study.id
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 1
    assert len(_jobs(engine)) == 1


def test_second_instance_while_pending_adds_no_job(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    add_instance(engine, "1", "2")
    assert [j.status for j in _jobs(engine)] == ["pending"]


def test_instance_during_scoring_reruns_the_job(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    job = claim_job(engine, "w1")
    assert job is not None
    add_instance(engine, "1", "2")
    _done(engine, job.id, "w1")
    [after] = _jobs(engine)
    assert after.status == "pending" and after.attempts == 0
    study = get_study(engine, "1.2.1")
    assert study is not None and study.status == "queued"


def test_instance_after_scoring_requeues_the_study(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    job = claim_job(engine, "w1")
    assert job is not None
    _done(engine, job.id, "w1")
    study = get_study(engine, "1.2.1")
    assert study is not None and study.status == "scored" and study.flags == ["Mass"]
    add_instance(engine, "1", "2")
    assert [j.status for j in _jobs(engine)] == ["done", "pending"]
    study = get_study(engine, "1.2.1")
    assert study is not None and study.status == "queued"
    assert len(list_results(engine, "1.2.1")) == 1


def test_claim_lease_expiry_and_reclaim(engine: Engine) -> None:
    assert claim_job(engine, "w1") is None
    add_instance(engine, "1", "1")
    now = utcnow()
    job = claim_job(engine, "w1", lease_seconds=30, now=now)
    assert job is not None and job.status == "running" and job.attempts == 1
    assert job.lease_owner == "w1"
    assert claim_job(engine, "w2", now=now + dt.timedelta(seconds=10)) is None
    renew_lease(engine, job.id, "w1", 30, now=now + dt.timedelta(seconds=20))
    assert claim_job(engine, "w2", now=now + dt.timedelta(seconds=40)) is None
    stolen = claim_job(engine, "w2", now=now + dt.timedelta(seconds=60))
    assert stolen is not None and stolen.id == job.id and stolen.attempts == 2
    assert "expired" in (stolen.last_error or "")
    with pytest.raises(WorklistError, match="not held by 'w1'"):
        _done(engine, job.id, "w1")
    with pytest.raises(WorklistError, match="not held"):
        renew_lease(engine, job.id, "w1")
    _done(engine, job.id, "w2")
    done = get_job(engine, job.id)
    assert done is not None and done.status == "done"


def test_three_failures_fail_the_study_with_the_reason(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    for attempt in (1, 2, 3):
        job = claim_job(engine, "w")
        assert job is not None and job.attempts == attempt
        failed = fail_job(engine, job.id, "w", f"CUDA out of memory #{attempt}")
    assert failed.status == "failed"
    assert claim_job(engine, "w") is None
    study = get_study(engine, "1.2.1")
    assert study is not None and study.status == "failed"
    assert "after 3 attempts" in (study.error or "")
    assert "CUDA out of memory #3" in (study.error or "")


def test_expired_last_attempt_fails_on_claim(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    now = utcnow()
    for i in range(3):
        job = claim_job(engine, f"w{i}", lease_seconds=10, now=now + dt.timedelta(seconds=20 * i))
        assert job is not None
    assert claim_job(engine, "w9", now=now + dt.timedelta(seconds=100)) is None
    study = get_study(engine, "1.2.1")
    assert study is not None and study.status == "failed"
    assert "lease" in (study.error or "")


def test_person_priority_is_never_lowered(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    set_priority(engine, "1.2.1", 80, by="person")
    job = claim_job(engine, "w")
    assert job is not None
    _done(engine, job.id, "w", priority=20)
    study = get_study(engine, "1.2.1")
    assert study is not None and study.priority == 80 and study.priority_set_by == "person"
    assert list_results(engine, "1.2.1")[0].priority == 20  # the model's own value is kept
    set_priority(engine, "1.2.1", 10, by="model")
    study = get_study(engine, "1.2.1")
    assert study is not None and study.priority == 80
    set_priority(engine, "1.2.1", 95, by="model")  # a model may raise it
    study = get_study(engine, "1.2.1")
    assert study is not None and study.priority == 95
    set_priority(engine, "1.2.1", 30, by="person")  # a person may lower it
    study = get_study(engine, "1.2.1")
    assert study is not None and study.priority == 30
    with pytest.raises(ValueError, match="0 to 100"):
        set_priority(engine, "1.2.1", 101)
    with pytest.raises(WorklistError, match="no study"):
        set_priority(engine, "9.9", 1)


def test_model_priority_applies_without_person(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    job = claim_job(engine, "w")
    assert job is not None
    _done(engine, job.id, "w", priority=70)
    study = get_study(engine, "1.2.1")
    assert study is not None and study.priority == 70 and study.priority_set_by == "model"


def test_ordering_priority_then_arrival(engine: Engine) -> None:
    for n in range(4):
        add_instance(engine, str(n), str(n))
    set_priority(engine, "1.2.2", 50)
    set_priority(engine, "1.2.3", 50)
    order = [s.study_instance_uid for s in list_studies(engine)]
    assert order == ["1.2.2", "1.2.3", "1.2.0", "1.2.1"]
    first = claim_job(engine, "w")
    assert first is not None
    assert [s.study_instance_uid for s in list_studies(engine, status="scoring")] == ["1.2.2"]
    assert count_studies(engine)["queued"] == 3
    assert len(list_studies(engine, limit=2)) == 2
    with pytest.raises(ValueError, match="unknown study status"):
        list_studies(engine, status="done")


def test_reviews(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    add_review(engine, "1.2.1", reviewer="dr.a", action="accept")
    add_review(engine, "1.2.1", reviewer="dr.b", action="reprioritise", priority=90)
    assert [r.action for r in list_reviews(engine, "1.2.1")] == ["accept", "reprioritise"]
    study = get_study(engine, "1.2.1")
    assert study is not None and study.priority == 90 and study.priority_set_by == "person"
    with pytest.raises(ValueError, match="needs a priority"):
        add_review(engine, "1.2.1", reviewer="dr.b", action="reprioritise")
    with pytest.raises(ValueError, match="unknown review action"):
        add_review(engine, "1.2.1", reviewer="dr.b", action="approve")


def test_delivery_backoff_then_failed(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    now = utcnow()
    delivery = queue_delivery(engine, "1.2.1", "dicom-sr", "PACS@127.0.0.1:104",
                              payload_path="results/sr.dcm", now=now)
    assert [d.id for d in due_deliveries(engine, now)] == [delivery.id]
    waits = []
    for attempt in range(1, DELIVERY_MAX_ATTEMPTS + 1):
        delivery = mark_delivery(engine, delivery.id, ok=False, error="refused", now=now)
        assert delivery.attempts == attempt
        if delivery.status == "pending":
            waits.append((delivery.next_attempt_at - now).total_seconds())
            assert due_deliveries(engine, now) == []
            now = delivery.next_attempt_at
            assert [d.id for d in due_deliveries(engine, now)] == [delivery.id]
    assert waits == [5.0, 10.0, 20.0, 40.0] == [delivery_backoff(n) for n in range(1, 5)]
    assert delivery.status == "failed" and delivery.last_error == "refused"
    assert due_deliveries(engine, now + dt.timedelta(days=1)) == []


def test_delivery_success(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    delivery = queue_delivery(engine, "1.2.1", "hl7", "ris:2575")
    mark_delivery(engine, delivery.id, ok=False, error="timeout")
    sent = mark_delivery(engine, delivery.id, ok=True)
    assert sent.status == "sent" and sent.last_error is None
    with pytest.raises(ValueError, match="unknown delivery kind"):
        queue_delivery(engine, "1.2.1", "email", "x")


def test_two_processes_never_claim_the_same_job(
    tmp_path: Path, db_url: str, engine: Engine
) -> None:
    n = 60
    for i in range(n):
        add_instance(engine, str(i), str(i))
    ctx = multiprocessing.get_context("spawn")
    ready = str(tmp_path)
    with ctx.Pool(2) as pool:
        results = pool.starmap(
            claim_all, [(db_url, ready, "proc-a", 2), (db_url, ready, "proc-b", 2)]
        )
    a, b = (set(r) for r in results)
    assert a and b, "both workers should have claimed jobs"
    assert not a & b
    assert len(a) + len(b) == n
    assert all(j.status == "done" and j.attempts == 1 for j in _jobs(engine))


def _blocked_at_begin(engine: Engine, thread: threading.Thread) -> bool:
    """Whether ``thread`` is inside SQLite's ``BEGIN IMMEDIATE`` (waiting for the lock)."""
    frame = sys._current_frames().get(thread.ident or -1)
    return (frame is not None and frame.f_code.co_name == "do_execute"
            and "BEGIN IMMEDIATE" in str(frame.f_locals.get("statement", "")))


def _in_other_transaction(engine: Engine, action: Callable[[], object]) -> threading.Thread:
    """Run ``action`` in a thread and return once it waits for our uncommitted writes."""
    began = threading.Event()

    def on_begin(_conn: object) -> None:
        if threading.current_thread() is thread:
            began.set()

    thread = threading.Thread(target=action)
    if engine.dialect.name != "postgresql":
        event.listen(engine, "begin", on_begin, insert=True)  # runs before BEGIN IMMEDIATE
    thread.start()
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        if engine.dialect.name != "postgresql":
            # SQLite: the thread has begun and sits in BEGIN IMMEDIATE (busy_timeout)
            if began.wait(timeout=10) and _blocked_at_begin(engine, thread):
                break
            continue
        with engine.connect() as conn:
            waiting = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND wait_event_type = 'Lock'")
            ).scalar()
        if waiting:
            break
        time.sleep(0.01)
    # the listener stays (removing it while the thread dispatches "begin" would break it)
    assert thread.is_alive(), "the other transaction should wait for ours"
    return thread


def test_instance_arriving_while_the_job_completes_is_scored(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    job = claim_job(engine, "w1")
    assert job is not None
    with Session(engine) as session, session.begin():
        _done(session, job.id, "w1")  # completing, not yet committed ...
        late = _in_other_transaction(engine, lambda: add_instance(engine, "1", "2"))
    late.join(30)  # ... while an instance of the study arrives
    assert [(j.status, j.rerun) for j in _jobs(engine)] == [("done", False), ("pending", False)]
    study = get_study(engine, "1.2.1")
    assert study is not None and study.status == "queued"


def test_concurrent_instances_of_a_scored_study_add_one_job(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    job = claim_job(engine, "w1")
    assert job is not None
    _done(engine, job.id, "w1")
    with Session(engine) as session, session.begin():
        add_instance(session, "1", "2")  # re-queues the study, not yet committed ...
        other = _in_other_transaction(engine, lambda: add_instance(engine, "1", "3"))
    other.join(30)  # ... while another instance arrives
    assert [j.status for j in _jobs(engine)] == ["done", "pending"]


def test_instance_arriving_while_the_job_is_claimed_reruns_it(engine: Engine) -> None:
    add_instance(engine, "1", "1")
    with Session(engine, expire_on_commit=False) as session, session.begin():
        job = claim_job(session, "w1")  # claiming, not yet committed ...
        assert job is not None
        late = _in_other_transaction(engine, lambda: add_instance(engine, "1", "2"))
    late.join(30)  # ... while an instance of the study arrives
    _done(engine, job.id, "w1")
    [after] = _jobs(engine)
    assert after.status == "pending" and not after.rerun  # scored again with both images
