"""Resource faults, broken header dates, failing outputs and the input gate never cost a
study its triage or its attempts."""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from radiolens.errors import ImageReadError, WorklistError
from radiolens.worker import Worker
from radiolens.worker.faults import Backoff, resource_fault
from radiolens.worklist import (
    NEEDS_CHECK_PRIORITY,
    Job,
    default_db_path,
    get_study,
    list_results,
    make_engine,
    open_worklist,
)

from .conftest import StoreStudy


def _jobs(worker: Worker) -> list[Job]:
    with Session(worker.engine_) as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def _disk_full(*_: Any, **__: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_resource_faults_are_told_from_study_faults() -> None:
    assert resource_fault(OSError(errno.ENOSPC, "full")) == "disk full"
    wrapped = WorklistError("worklist database error")
    wrapped.__cause__ = OperationalError("INSERT", {}, Exception("attempt to write a "
                                                               "readonly database"))
    assert resource_fault(wrapped) == "database read-only"
    assert resource_fault(ImageReadError("truncated file")) is None
    assert resource_fault(ValueError("bad date")) is None


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(base=1.0, cap=5.0)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_disk_full_never_counts_an_attempt(tiny_model: Path, store_study: StoreStudy,
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    uid = store_study()
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    monkeypatch.setattr("radiolens._fs.write_atomic", _disk_full)
    for _ in range(5):  # more tries than a study has attempts
        with pytest.raises(OSError, match="No space"):
            worker.run_once()
    [job] = _jobs(worker)
    assert (job.status, job.attempts) == ("pending", 0)
    assert job.last_error == "disk full"
    monkeypatch.undo()
    assert worker.run_once() is True  # space again: scored at the first real attempt
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "scored"


def test_read_only_database_backs_off_and_keeps_running(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path) -> None:
    store_study()
    db = default_db_path(tmp_path / "data")
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    worker.engine_ = make_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
    stop = threading.Event()
    delays: list[float] = []

    def next_delay() -> float:
        delays.append(Backoff.next_delay(worker.backoff))
        if len(delays) == 3:
            stop.set()
        return 0.0

    worker.backoff.next_delay = next_delay  # type: ignore[method-assign]
    worker.run(stop)  # returns instead of raising: the process stays up
    assert delays == [1.0, 2.0, 4.0]
    [job] = _jobs(Worker(tmp_path / "data", model=str(tiny_model)).load())
    assert job.attempts == 0


def test_malformed_header_dates_are_left_out_silently(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    uid = store_study(header={"PatientBirthDate": "00000000", "StudyDate": "20261399"})
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    assert worker.run_once() is True
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "scored" and study.error is None
    out = tmp_path / "data" / "results" / uid
    hl7 = (out / "oru.hl7").read_text()
    assert "00000000" not in hl7 and "20261399" not in hl7
    assert (out / "fhir.json").is_file() and (out / "sr.dcm").is_file()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("radiolens"))
    assert "00000000" not in ours and "20261399" not in ours
    assert "patient_birth_date is not a valid YYYYMMDD date" in ours


def test_a_failing_output_never_fails_triage_and_is_retried(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    uid = store_study()
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()

    def broken(*_: Any, **__: Any) -> str:
        raise ValueError("hl7apy said no")

    monkeypatch.setattr("radiolens.drafts.make_oru", broken)
    assert worker.run_once() is True
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "scored" and study.flags
    assert study.output_errors == {"hl7": "ValueError: hl7apy said no"}
    assert study.error and "hl7" in study.error and "retried later" in study.error
    monkeypatch.undo()
    assert worker.retry_outputs() == 1
    study = get_study(worker.engine_, uid)
    assert study is not None and study.output_errors is None and study.error is None
    assert (tmp_path / "data" / "results" / uid / "oru.hl7").is_file()
    assert worker.retry_outputs() == 0


def test_an_image_failing_the_gate_needs_a_check(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    uid = store_study()
    seen: list[tuple[int, ...]] = []

    def gate(image: Any) -> str | None:
        seen.append(image.pixels.shape)
        return "image too small (80 x 72 pixels)"

    monkeypatch.setattr("radiolens.worker.scoring._gate", gate)
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    assert worker.run_once() is True
    assert seen == [(80, 72)]
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "needs-check"
    assert study.error is not None and study.error.startswith("check image: ")
    assert "too small" in study.error
    assert study.flags == [] and study.findings == {}
    assert study.priority == NEEDS_CHECK_PRIORITY
    assert list_results(worker.engine_, uid) == []  # stored, not scored
    assert worker.run_once() is False


def test_the_real_gate_stops_a_blank_image(tiny_model: Path, store_study: StoreStudy,
                                           tmp_path: Path) -> None:
    pytest.importorskip("radiolens.imaging.gate")
    uid = store_study(blank=True)
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()
    assert worker.run_once() is True
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "needs-check"
    assert study.error is not None and "blank" in study.error and not study.flags


def test_worker_process_waits_for_an_unopenable_database(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens.worker import runner

    calls: list[int] = []
    real_open = open_worklist

    def flaky_open(url: Any) -> Any:
        calls.append(1)
        if len(calls) < 3:
            raise WorklistError("cannot open") from OperationalError(
                "BEGIN", {}, Exception("unable to open database file"))
        return real_open(url)

    monkeypatch.setattr("radiolens.worklist.open_worklist", flaky_open)
    monkeypatch.setattr(runner.Worker, "run", lambda self, stop: None)
    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: False)
    monkeypatch.setattr("signal.signal", lambda *_: None)
    runner.run_worker_process({"data_dir": str(tmp_path / "data"), "model": str(tiny_model)},
                              memory_limit_mb=0)
    assert len(calls) == 3


def test_the_memory_limit_turns_a_runaway_allocation_into_memory_error() -> None:
    import subprocess
    import sys

    code = ("import resource, time\n"
            "from radiolens.worker.runner import limit_memory\n"
            "limit_memory(1024)\n"
            "print(resource.getrlimit(resource.RLIMIT_AS)[0])\n"
            "try:\n    bytearray(2 << 30)\nexcept MemoryError:\n    print('MemoryError')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.split() == [str(1024 * 1024 * 1024), "MemoryError"], run.stderr


def test_a_job_that_cannot_be_handed_back_is_released_once_the_db_writes(
        tiny_model: Path, store_study: StoreStudy, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens.worker.faults import ResourceFault

    uid = store_study()
    worker = Worker(tmp_path / "data", model=str(tiny_model)).load()

    def db_refuses(*_: Any, **__: Any) -> None:
        raise WorklistError("worklist database error") from OperationalError(
            "UPDATE", {}, Exception("attempt to write a readonly database"))

    monkeypatch.setattr("radiolens._fs.write_atomic", _disk_full)
    monkeypatch.setattr("radiolens.worklist.release_job", db_refuses)
    with pytest.raises(OSError):
        worker.run_once()
    monkeypatch.setattr("radiolens.worklist.release_job", db_refuses)
    with pytest.raises(ResourceFault, match="database read-only"):
        worker.run_once()  # still unwritable: nothing new is claimed
    [job] = _jobs(worker)
    assert job.status == "running"
    monkeypatch.undo()
    assert worker.run_once() is True  # handed back, claimed again, scored
    [job] = _jobs(worker)
    assert (job.status, job.attempts) == ("done", 1)
    study = get_study(worker.engine_, uid)
    assert study is not None and study.status == "scored"
