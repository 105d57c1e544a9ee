"""The worker: claims scoring jobs from the worklist, scores them, sends results back.

It runs in its own process under ``radiolens serve`` so that a model crash never drops a
DICOM association; a job whose worker died is retried when its lease expires, and a
study that fails three times is marked failed with the reason. An unreadable image fails
its study at once. Resource faults (disk full, database read-only or unavailable) never
count an attempt: the job is handed back and the worker backs off (1 s doubling to 60 s)
and keeps running.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from radiolens.errors import ConfigError, DicomSendError, ImageReadError, RadiolensError
from radiolens.worker.faults import Backoff, ResourceFault, resource_fault
from radiolens.worker.lungs import DEFAULT_LUNG_MODEL

__all__ = ["DEFAULT_MEMORY_LIMIT_MB", "Worker", "limit_memory", "parse_host_port",
           "run_worker_process"]

#: Address-space limit of the worker process (``RLIMIT_AS``), in MiB; 0 for none.
DEFAULT_MEMORY_LIMIT_MB = 8192
#: Seconds between passes that build the structured outputs scored studies lack.
OUTPUT_RETRY_INTERVAL_S = 60.0

logger = logging.getLogger(__name__)


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` → ``(host, port)``.

    Raises:
        ConfigError: the text is not ``host:port`` with a port in 1..65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"expected HOST:PORT (for example ris.example.org:2575), got {text!r}")
    return host.strip("[]"), int(port)


class Worker:
    """Scores queued studies.

    Args:
        data_dir: the service's data folder (DICOM files, results, worklist.db).
        db: database URL or path (default ``data_dir/worklist.db``).
        model: run directory or ``builtin:NAME``.
        policy_file: YAML overriding thresholds / urgency (see :mod:`radiolens.worker.policy`).
        forward_to: ``AE@host:port`` to send the SR, the lung Segmentation (and the
            heatmaps) back to.
        hl7_to: ``host:port`` of an HL7 MLLP listener for the ORU^R01 message.
        send_heatmaps: also forward the heatmap Secondary Capture images.
        lung_model: lung segmentation run directory, ``builtin:lungs`` (the default; when
            not installed the worker warns once and scores without lung masks) or
            ``none``. Its DICOM Segmentation is forwarded with the SR.
        lease_seconds: how long a claimed job stays ours without renewal.
        poll_interval: seconds between polls of an empty queue.
    """

    def __init__(self, data_dir: str | Path, db: str | None = None,
                 model: str = "builtin:pneumonia-kermany", policy_file: str | None = None,
                 forward_to: str | None = None, hl7_to: str | None = None,
                 send_heatmaps: bool = False, lease_seconds: int = 30,
                 poll_interval: float = 0.1, heatmaps: bool = True,
                 lung_model: str | None = DEFAULT_LUNG_MODEL) -> None:
        self.data_dir = Path(data_dir)
        self.db = db
        self.model = model
        self.policy_file = policy_file
        self.forward_to = forward_to
        self.hl7_to = hl7_to
        self.send_heatmaps = send_heatmaps
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.heatmaps = heatmaps
        self.lung_model = lung_model
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.backoff = Backoff(base=1.0, cap=60.0)
        self._held: list[tuple[int, str]] = []  # jobs to hand back once the DB is writable
        self._release_fault = ""  # why the last hand-back failed

    def load(self) -> Worker:
        """Open the worklist and load the model and the lung segmentation."""
        from radiolens.dicomnet import parse_ae_address
        from radiolens.inference import Predictor
        from radiolens.worker.lungs import load_lung_model
        from radiolens.worker.policy import load_policy
        from radiolens.worklist import default_db_path, open_worklist

        if self.forward_to:
            parse_ae_address(self.forward_to)
        if self.hl7_to:
            parse_host_port(self.hl7_to)
        self.engine_ = open_worklist(self.db or default_db_path(self.data_dir))
        self.predictor_ = Predictor(self.model).load()
        self.policy_ = load_policy(self.predictor_.thresholds, self.predictor_.info_.urgency,
                                   self.policy_file)
        self.lungs_ = load_lung_model(self.lung_model, self.predictor_)
        logger.info("worker %s ready: model %s (%s)", self.owner, self.model,
                    ", ".join(self.predictor_.labels))
        return self

    # ---------------------------------------------------------------- scoring
    def _release(self, job_id: int, reason: str) -> None:
        """Hand a job back without counting the attempt (later, if the DB refuses now)."""
        from radiolens.worklist import release_job

        try:
            release_job(self.engine_, job_id, self.owner, reason)
        except RadiolensError as exc:
            fault = resource_fault(exc)
            if fault:
                self._held.append((job_id, reason))
                self._release_fault = fault
            else:
                logger.warning("job %d could not be handed back: %s", job_id, exc)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for job_id, reason in held:
            self._release(job_id, reason)
        if self._held:
            raise ResourceFault(self._release_fault)

    def run_once(self) -> bool:
        """Claim and score one job; False when the queue is empty.

        Raises:
            WorklistError, OSError, ResourceFault: a resource fault (see
                :func:`resource_fault`); the job was handed back without counting the
                attempt (or will be once the database takes writes); back off, call again.
        """
        from radiolens.worklist import claim_job

        self._release_held()
        job = claim_job(self.engine_, self.owner, self.lease_seconds)
        if job is None:
            return False
        try:
            self._score_job(job.id, job.study_fk, job.attempts)
        except Exception as exc:
            reason = resource_fault(exc)
            if reason is None:
                raise
            logger.warning("job %d: %s; handing it back (attempt not counted)", job.id, reason)
            self._release(job.id, reason)
            raise
        return True

    def _score_job(self, job_id: int, study_fk: int, attempt: int) -> None:
        from sqlalchemy.orm import Session

        from radiolens.worker.scoring import NeedsCheck, relative_message, score_study
        from radiolens.worklist import (
            Study,
            complete_job,
            fail_job,
            list_instances,
            mark_needs_check,
            record_output_errors,
        )

        with Session(self.engine_) as session:
            study = session.get(Study, study_fk)
            uid = study.study_instance_uid if study is not None else None
        if uid is None:
            fail_job(self.engine_, job_id, self.owner, "study row missing")
            return
        t0 = time.perf_counter()
        try:
            paths = [inst.path for inst in list_instances(self.engine_, uid)]
            scored = score_study(self.data_dir, uid, paths, self.predictor_, self.policy_,
                                 str(self.model), heatmaps=self.heatmaps, lungs=self.lungs_)
        except NeedsCheck as exc:
            logger.warning("study %s needs a check of its images: %s", uid, exc.reason)
            mark_needs_check(self.engine_, job_id, self.owner, exc.reason)
            return
        except Exception as exc:  # a model or file failure must not kill the worker
            if resource_fault(exc):
                raise
            reason = relative_message(f"{type(exc).__name__}: {exc}", self.data_dir)
            logger.error("study %s failed (attempt %d): %s", uid, attempt, reason,
                         exc_info=not isinstance(exc, RadiolensError))
            fail_job(self.engine_, job_id, self.owner, reason,
                     permanent=isinstance(exc, ImageReadError))
            return
        complete_job(self.engine_, job_id, self.owner, model=str(self.model),
                     model_version=self.predictor_.info_.radiolens_version,
                     findings=scored.findings, flags=scored.flags, priority=scored.priority,
                     thresholds=scored.thresholds, heatmap_paths=scored.heatmap_paths,
                     draft_text=scored.draft_text, sr_path=scored.sr_path,
                     image_check=scored.image_check, lungs=scored.lungs)
        record_output_errors(self.engine_, uid, scored.output_errors)
        logger.info("scored study %s in %.2f s: priority %d, flags %s", uid,
                    time.perf_counter() - t0, scored.priority, scored.flags or "none")
        if scored.image_check:
            logger.warning("study %s: check image: %s", uid, scored.image_check)
        self._queue_deliveries(uid, scored, set(scored.output_errors) | {
            "sr", "hl7", "heatmap", "lung_seg"})

    def _queue_deliveries(self, uid: str, scored: Any, wanted: set[str]) -> None:
        from radiolens.worklist import queue_delivery

        if self.forward_to and scored.sr_path and "sr" in wanted:
            queue_delivery(self.engine_, uid, "dicom-sr", self.forward_to,
                           payload_path=scored.sr_path)
        if self.forward_to and scored.lung_seg_path and "lung_seg" in wanted:
            queue_delivery(self.engine_, uid, "dicom-seg", self.forward_to,
                           payload_path=scored.lung_seg_path)
        if self.forward_to and self.send_heatmaps and "heatmap" in wanted:
            for path in scored.heatmap_sc_paths.values():
                queue_delivery(self.engine_, uid, "dicom-sc", self.forward_to,
                               payload_path=path)
        if self.hl7_to and scored.hl7_path and "hl7" in wanted:
            queue_delivery(self.engine_, uid, "hl7", self.hl7_to, payload_path=scored.hl7_path)

    def retry_outputs(self) -> int:
        """Build again the outputs scored studies are missing; return how many it built."""
        from radiolens.worker.scoring import score_study
        from radiolens.worklist import (
            list_instances,
            record_output_errors,
            studies_missing_outputs,
            update_result_outputs,
        )

        built = 0
        for study in studies_missing_outputs(self.engine_):
            uid, missing = study.study_instance_uid, set(study.output_errors or {})
            paths = [inst.path for inst in list_instances(self.engine_, uid)]
            try:
                scored = score_study(self.data_dir, uid, paths, self.predictor_,
                                     self.policy_, str(self.model), heatmaps=self.heatmaps,
                                     lungs=self.lungs_)
            except Exception as exc:
                if resource_fault(exc):
                    raise
                record_output_errors(self.engine_, uid, {
                    name: f"{type(exc).__name__}: {exc}" for name in missing})
                continue
            update_result_outputs(self.engine_, uid, sr_path=scored.sr_path,
                                  heatmap_paths=scored.heatmap_paths, lungs=scored.lungs)
            record_output_errors(self.engine_, uid, scored.output_errors)
            now_built = missing - set(scored.output_errors)
            built += len(now_built)
            self._queue_deliveries(uid, scored, now_built)
        return built

    # ---------------------------------------------------------------- sending
    def deliver_due(self) -> int:
        """Try every delivery that is due; failures are retried later with backoff."""
        from radiolens.dicomnet import send_files
        from radiolens.drafts import send_mllp
        from radiolens.worklist import due_deliveries, mark_delivery

        done = 0
        for delivery in due_deliveries(self.engine_):
            payload = self.data_dir / (delivery.payload_path or "")
            try:
                if not payload.is_file():
                    raise DicomSendError(f"result file {delivery.payload_path} is missing "
                                         "from the data folder")
                if delivery.kind == "hl7":
                    host, port = parse_host_port(delivery.destination)
                    send_mllp(payload.read_text(encoding="utf-8"), host, port)
                else:
                    report = send_files([payload], delivery.destination)
                    if report.failed:
                        raise DicomSendError("; ".join(r for _, r in report.failed))
            except (RadiolensError, OSError) as exc:
                logger.warning("sending %s of study to %s failed: %s", delivery.kind,
                               delivery.destination, exc)
                mark_delivery(self.engine_, delivery.id, False, str(exc))
                continue
            mark_delivery(self.engine_, delivery.id, True)
            done += 1
        return done

    def run(self, stop: threading.Event | None = None) -> None:
        """Score, retry missing outputs and deliver until ``stop`` is set.

        Resource faults back off exponentially (capped) and never stop the loop.
        """
        stop = stop or threading.Event()
        last_pass = last_retry = 0.0
        while not stop.is_set():
            try:
                busy = self.run_once()
                now = time.monotonic()
                if now - last_retry > OUTPUT_RETRY_INTERVAL_S:
                    last_retry = now
                    self.retry_outputs()
                if (self.forward_to or self.hl7_to) and now - last_pass > 1.0:
                    last_pass = now
                    self.deliver_due()
            except Exception as exc:
                reason = resource_fault(exc)
                if reason is None and not isinstance(exc, RadiolensError):
                    raise
                delay = self.backoff.next_delay()
                logger.warning("worker pass failed (%s); next try in %.0f s",
                               reason or exc, delay)
                stop.wait(delay)
                continue
            self.backoff.reset()
            if not busy:
                stop.wait(self.poll_interval)


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space (``RLIMIT_AS``) at ``megabytes`` MiB (0: no cap).

    A runaway allocation then fails with MemoryError in this process instead of the
    kernel's OOM killer taking the receiver or the API with it.
    """
    if megabytes <= 0:
        return
    import resource

    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def run_worker_process(options: dict[str, Any], verbose: int = 0, quiet: bool = False,
                       memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB) -> None:
    """Entry point of the worker process (``multiprocessing`` spawn target).

    Opening the worklist is retried with backoff while the database is unavailable.
    """
    import signal

    from radiolens.logsafe import setup_logging

    setup_logging(verbose, quiet)
    limit_memory(memory_limit_mb)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us with SIGTERM
    worker = Worker(**options)
    while not stop.is_set():
        try:
            worker.load()
            break
        except RadiolensError as exc:
            reason = resource_fault(exc)
            if reason is None:
                raise
            delay = worker.backoff.next_delay()
            logger.warning("cannot open the worklist (%s); next try in %.0f s", reason, delay)
            stop.wait(delay)
    worker.run(stop)
