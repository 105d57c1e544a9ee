"""Queued studies are scored in batches: one ``predict`` over all their images, then each
study finished on its own, with its own job, lease, attempts and failure."""

from __future__ import annotations

import datetime as dt
import errno
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from radiolens.errors import ConfigError, WorklistError
from radiolens.worker import Worker
from radiolens.worker.runner import BATCH_STUDIES_ENV, _with_batch_setting
from radiolens.worklist import (
    Job,
    Study,
    claim_jobs,
    default_db_path,
    get_study,
    list_results,
    open_worklist,
    utcnow,
)

from .conftest import StoreStudy


def _jobs(worker: Worker) -> dict[str, Job]:
    """Each study's (latest) job, by Study Instance UID."""
    with Session(worker.engine_) as session:
        rows = session.execute(select(Study.study_instance_uid, Job)
                               .join(Job, Job.study_fk == Study.id).order_by(Job.id))
        return {uid: job for uid, job in rows}


def _count_predict(worker: Worker, fail_on: np.ndarray | None = None) -> list[int]:
    """Wrap the real ``predict``: record each call's image count (and raise ValueError
    for a call that holds an image with the pixels ``fail_on``)."""
    calls: list[int] = []
    real = worker.predictor_.predict

    def predict(images: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(images))
        if fail_on is not None and any(np.array_equal(im.pixels, fail_on) for im in images):
            raise ValueError("the model refused this image")
        return real(images, *args, **kwargs)

    worker.predictor_.predict = predict  # type: ignore[method-assign]
    return calls


def _image(data_dir: Path, uid: str) -> Any:
    from radiolens.imaging import read_image

    [path] = (data_dir / "dicom" / uid).glob("*.dcm")
    return read_image(path)


def test_a_batch_of_studies_is_scored_with_one_predict_call(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path) -> None:
    uids = [store_study() for _ in range(4)]
    data_dir = tmp_path / "data"
    worker = Worker(data_dir, model=str(tiny_model)).load()
    calls = _count_predict(worker)
    assert worker.run_batch() == 4
    assert calls == [4]  # one predict over the four studies' images
    assert worker.run_batch() == 0 and calls == [4]
    alone = Worker(data_dir, model=str(tiny_model)).load()
    for uid in uids:
        study = get_study(worker.engine_, uid)
        assert study is not None and study.status == "scored" and study.error is None
        [result] = list_results(worker.engine_, uid)  # its own result, once
        # the same scores as the study scored on its own
        [pred] = alone.predictor_.predict([_image(data_dir, uid)])
        assert result.findings["pneumonia"] == pytest.approx(
            pred.probabilities["pneumonia"], abs=1e-4)
        assert study.findings == result.findings
        out = data_dir / "results" / uid
        assert pydicom.dcmread(out / "sr.dcm").StudyInstanceUID == uid
        assert uid in (out / "oru.hl7").read_text()
        assert (data_dir / result.heatmap_paths["pneumonia"]).is_file()  # flagged: a heatmap
    assert {j.status for j in _jobs(worker).values()} == {"done"}
    assert {j.attempts for j in _jobs(worker).values()} == {1}


def test_batch_studies_limits_the_batch_and_a_lone_study_is_not_kept_waiting(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path) -> None:
    for _ in range(3):
        store_study()
    worker = Worker(tmp_path / "data", model=str(tiny_model), batch_studies=2).load()
    calls = _count_predict(worker)
    assert worker.run_batch() == 2  # at most batch_studies
    assert worker.run_batch() == 1  # whatever is queued: no wait for a full batch
    assert worker.run_batch() == 0
    assert calls == [2, 1]
    store_study()
    assert worker.run_once() is True and calls == [2, 1, 1]  # run_once: one study


def test_an_unreadable_study_in_a_batch_fails_alone(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path) -> None:
    first = store_study()
    bad = store_study(corrupt=True)
    last = store_study()
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    calls = _count_predict(worker)
    assert worker.run_batch() == 3
    assert calls == [2]  # the readable studies, still together
    study = get_study(worker.engine_, bad)
    assert study is not None and study.status == "failed"
    assert study.error and "no readable image" in study.error and "after" not in study.error
    assert str(tmp_path) not in study.error
    for uid in (first, last):
        study = get_study(worker.engine_, uid)
        assert study is not None and study.status == "scored" and study.error is None
    jobs = _jobs(worker)
    assert (jobs[bad].status, jobs[bad].attempts) == ("failed", 1)
    assert worker.run_batch() == 0  # not retried


def test_a_study_needing_a_check_does_not_block_the_others(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens.worklist import NEEDS_CHECK_PRIORITY

    def gate(image: Any) -> str | None:  # refuses blank images, whatever gate is installed
        return "blank image" if np.ptp(image.pixels) == 0 else None

    monkeypatch.setattr("radiolens.worker.scoring._gate", gate)
    first = store_study()
    blank = store_study(blank=True)
    last = store_study()
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    calls = _count_predict(worker)
    assert worker.run_batch() == 3
    assert calls == [2]
    study = get_study(worker.engine_, blank)
    assert study is not None and study.status == "needs-check"
    assert study.error is not None and study.error.startswith("check image: ")
    assert study.error.endswith(": blank image")
    assert study.priority == NEEDS_CHECK_PRIORITY and list_results(worker.engine_, blank) == []
    for uid in (first, last):
        study = get_study(worker.engine_, uid)
        assert study is not None and study.status == "scored" and study.flags
    assert {j.status for j in _jobs(worker).values()} == {"done"}


def test_a_model_failure_costs_only_its_own_study_an_attempt(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path) -> None:
    good = store_study()
    bad = store_study()
    data_dir = tmp_path / "data"
    worker = Worker(data_dir, model=str(tiny_model)).load()
    calls = _count_predict(worker, fail_on=_image(data_dir, bad).pixels)
    assert worker.run_batch() == 2
    assert calls == [2, 1, 1]  # together, then each alone once the batch failed
    jobs = _jobs(worker)
    assert (jobs[good].status, jobs[good].attempts, jobs[good].lease_owner) == ("done", 1, None)
    assert (jobs[bad].status, jobs[bad].attempts, jobs[bad].lease_owner) == ("pending", 1, None)
    assert jobs[bad].last_error == "ValueError: the model refused this image"
    study = get_study(worker.engine_, bad)
    assert study is not None and study.status == "queued"
    assert get_study(worker.engine_, good).status == "scored"  # type: ignore[union-attr]
    assert worker.run_batch() == 1 and worker.run_batch() == 1  # attempts 2 and 3
    assert worker.run_batch() == 0
    jobs = _jobs(worker)
    assert (jobs[bad].status, jobs[bad].attempts) == ("failed", 3)
    assert (jobs[good].status, jobs[good].attempts) == ("done", 1)  # untouched
    study = get_study(worker.engine_, bad)
    assert study is not None and study.status == "failed"
    assert study.error and "after 3 attempts" in study.error


def test_an_output_error_stays_with_its_study(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens import drafts

    uids = [store_study() for _ in range(3)]
    real = drafts.make_oru

    def make_oru(result: Any, *args: Any, **kwargs: Any) -> str:
        if result.study_instance_uid == uids[1]:
            raise ValueError("hl7apy said no")
        return real(result, *args, **kwargs)

    monkeypatch.setattr("radiolens.drafts.make_oru", make_oru)
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    assert worker.run_batch() == 3
    for uid in uids:
        study = get_study(worker.engine_, uid)
        assert study is not None and study.status == "scored"
        if uid == uids[1]:
            assert study.output_errors == {"hl7": "ValueError: hl7apy said no"}
        else:
            assert study.output_errors is None and study.error is None


def test_disk_full_hands_the_whole_batch_back_without_an_attempt(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*_: Any, **__: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    uids = [store_study() for _ in range(3)]
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    monkeypatch.setattr("radiolens._fs.write_atomic", disk_full)
    for _ in range(4):  # more tries than a study has attempts
        with pytest.raises(OSError, match="No space"):
            worker.run_batch()
    jobs = _jobs(worker)
    assert {(j.status, j.attempts, j.last_error) for j in jobs.values()} == {
        ("pending", 0, "disk full")}
    monkeypatch.undo()
    assert worker.run_batch() == 3
    for uid in uids:
        study = get_study(worker.engine_, uid)
        assert study is not None and study.status == "scored"
    assert {(j.status, j.attempts) for j in _jobs(worker).values()} == {("done", 1)}


def test_a_job_that_cannot_be_finished_does_not_stop_the_others(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens import worklist

    uids = [store_study() for _ in range(3)]
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    lost = _jobs(worker)[uids[0]].id
    real = worklist.complete_job

    def complete_job(bind: Any, job_id: int, *args: Any, **kwargs: Any) -> Any:
        if job_id == lost:
            raise WorklistError(f"job {job_id} is not held by us: its lease expired")
        return real(bind, job_id, *args, **kwargs)

    monkeypatch.setattr("radiolens.worklist.complete_job", complete_job)
    with pytest.raises(WorklistError, match="lease expired"):
        worker.run_batch()  # raised once the batch's other jobs were finished
    for uid in uids[1:]:
        study = get_study(worker.engine_, uid)
        assert study is not None and study.status == "scored"
    assert _jobs(worker)[uids[0]].status == "running"  # left to its lease, as before


def test_claim_jobs_gives_each_job_its_own_lease_and_attempt(
        store_study: StoreStudy, tmp_path: Path) -> None:
    for _ in range(3):
        store_study()
    engine = open_worklist(default_db_path(tmp_path / "data"))
    now = utcnow()
    first = claim_jobs(engine, "w1", 30, limit=2, now=now)
    assert len(first) == 2 and all(j.status == "running" for j in first)
    assert {(j.attempts, j.lease_owner) for j in first} == {(1, "w1")}
    assert {j.lease_expires_at for j in first} == {now + dt.timedelta(seconds=30)}
    [rest] = claim_jobs(engine, "w2", 30, limit=8, now=now)  # whatever is left
    assert rest.id not in {j.id for j in first}
    assert claim_jobs(engine, "w3", 30, limit=8, now=now + dt.timedelta(seconds=10)) == []
    # leases expire one by one: each expired job is claimed again, its attempt counted
    again = claim_jobs(engine, "w3", 30, limit=8, now=now + dt.timedelta(seconds=40))
    assert len(again) == 3 and {j.attempts for j in again} == {2}
    assert all("expired" in (j.last_error or "") for j in again)
    with pytest.raises(ValueError, match="at least 1"):
        claim_jobs(engine, "w", limit=0)


def test_the_batch_setting(tiny_model: Path, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="batch_studies"):
        Worker(tmp_path / "data", model=str(tiny_model), batch_studies=0).load()
    assert Worker(tmp_path / "data").batch_studies == 8
    monkeypatch.delenv(BATCH_STUDIES_ENV, raising=False)
    assert _with_batch_setting({"model": "m"}) == {"model": "m"}
    monkeypatch.setenv(BATCH_STUDIES_ENV, "1")
    assert _with_batch_setting({"model": "m"}) == {"model": "m", "batch_studies": 1}
    assert _with_batch_setting({"batch_studies": 4}) == {"batch_studies": 4}
    monkeypatch.setenv(BATCH_STUDIES_ENV, "0")
    with pytest.raises(ConfigError, match=BATCH_STUDIES_ENV):
        _with_batch_setting({})


def _lung_worker(tiny_model: Path, tmp_path: Path) -> Worker:
    from .test_lungs import _seg_run

    run = _seg_run(tmp_path / "seg-run", "dark")
    return Worker(tmp_path / "data", model=str(tiny_model), lung_model=str(run)).load()


def _count_segment(worker: Worker, fail_together: bool = False) -> list[int]:
    assert worker.lungs_ is not None
    segmenter = worker.lungs_.segmenter
    seen: list[int] = []
    real = segmenter.segment_many

    def segment_many(images: list[np.ndarray]) -> list[object]:
        seen.append(len(images))
        if fail_together and len(images) > 1:
            raise RuntimeError("out of memory for the batch")
        return real(images)

    segmenter.segment_many = segment_many
    return seen


def test_one_lung_segmentation_for_the_batch(tiny_model: Path, store_study: StoreStudy,
                                             tmp_path: Path) -> None:
    uids = [store_study() for _ in range(3)]
    worker = _lung_worker(tiny_model, tmp_path)
    seen = _count_segment(worker)
    assert worker.run_batch() == 3
    assert seen == [3]
    for uid in uids:
        study = get_study(worker.engine_, uid)
        assert study is not None and study.status == "scored" and study.lungs is not None
        assert (tmp_path / "data" / "results" / uid / "lung_mask.png").is_file()


def test_a_failing_batched_segmentation_is_run_study_by_study(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path) -> None:
    uids = [store_study() for _ in range(3)]
    worker = _lung_worker(tiny_model, tmp_path)
    seen = _count_segment(worker, fail_together=True)
    assert worker.run_batch() == 3
    assert seen == [3, 1, 1, 1]
    for uid in uids:
        study = get_study(worker.engine_, uid)
        assert study is not None and study.status == "scored" and study.lungs is not None
        assert study.output_errors is None
