"""The worker: claims scoring jobs from the worklist, scores them, sends results back.

It runs in its own process under ``radiolens serve`` so that a model crash never drops a
DICOM association; a job whose worker died is retried when its lease expires, and a
study that fails three times is marked failed with the reason. An unreadable image fails
its study at once. Resource faults (disk full, database read-only or unavailable) never
count an attempt: the job is handed back and the worker backs off (1 s doubling to 60 s)
and keeps running. Queued studies are claimed and scored in batches (``batch_studies``,
whatever is queued now): one batched lung segmentation and ``predict`` over all their
images, then each study is finished and its job settled on its own.

A study is on the worklist (``scored``, with its priority, heatmaps and draft) before its
standard outputs (SR, lung Segmentation, heatmap Secondary Capture, FHIR, HL7) are
built, and before its lung segmentation when the classifier does not need it (the lung
check, heat in lungs and the draft's lung cautions follow with the outputs).
:meth:`Worker.run` builds them as soon as the queue is empty, or once they have waited
``output_lag_s`` (so a long stream of studies never starves them), then queues their
delivery. The outputs still to build are recorded with the score
(``Study.outputs_pending``); a worker that stopped in between builds them when it
starts again.
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

__all__ = ["BATCH_STUDIES_ENV", "DEFAULT_BATCH_STUDIES", "DEFAULT_MEMORY_LIMIT_MB", "Worker",
           "limit_memory", "parse_host_port", "run_worker_process"]

#: Address-space limit of the worker process (``RLIMIT_AS``), in MiB; 0 for none.
DEFAULT_MEMORY_LIMIT_MB = 8192
#: Most queued studies the worker scores together (see ``Worker.batch_studies``).
DEFAULT_BATCH_STUDIES = 8
#: Environment variable the worker process reads ``batch_studies`` from when its options
#: do not set it (``radiolens serve`` passes it through to the spawned worker).
BATCH_STUDIES_ENV = "RADIOLENS_BATCH_STUDIES"
#: Seconds between passes that build the structured outputs scored studies lack.
OUTPUT_RETRY_INTERVAL_S = 60.0
#: Longest a scored study's standard outputs wait while more studies are queued.
DEFAULT_OUTPUT_LAG_S = 5.0

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
        batch_studies: most queued studies :meth:`run` claims and scores together (one
            ``predict`` over all their images); whatever is queued is taken, a lone study
            at once. 1 scores one study at a time.
        backend: how to score (``auto``: OpenVINO, else ONNX Runtime, else PyTorch; see
            :class:`~radiolens.inference.Predictor`). With ONNX Runtime or OpenVINO and a
            DenseNet or ResNet the heatmaps come from the forward pass that scored.
        output_lag_s: longest the standard outputs of a scored study wait while more
            studies are queued (scoring comes first; see the module's docstring).
    """

    def __init__(self, data_dir: str | Path, db: str | None = None,
                 model: str = "builtin:pneumonia-kermany", policy_file: str | None = None,
                 forward_to: str | None = None, hl7_to: str | None = None,
                 send_heatmaps: bool = False, lease_seconds: int = 30,
                 poll_interval: float = 0.1, heatmaps: bool = True,
                 lung_model: str | None = DEFAULT_LUNG_MODEL,
                 batch_studies: int = DEFAULT_BATCH_STUDIES, backend: str = "auto",
                 output_lag_s: float = DEFAULT_OUTPUT_LAG_S) -> None:
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
        self.batch_studies = batch_studies
        self.backend = backend
        self.output_lag_s = output_lag_s
        #: scored studies whose standard outputs are still to build: uid -> (when, study)
        self._later: dict[str, tuple[float, Any]] = {}
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

        if self.batch_studies < 1:
            raise ConfigError(f"batch_studies must be at least 1, got {self.batch_studies}")
        if self.forward_to:
            parse_ae_address(self.forward_to)
        if self.hl7_to:
            parse_host_port(self.hl7_to)
        self.engine_ = open_worklist(self.db or default_db_path(self.data_dir))
        self.predictor_ = Predictor(self.model, backend=self.backend).load()  # type: ignore[arg-type]
        self.policy_ = load_policy(self.predictor_.thresholds, self.predictor_.info_.urgency,
                                   self.policy_file)
        self.lungs_ = load_lung_model(self.lung_model, self.predictor_)
        logger.info("worker %s ready: model %s (%s) on %s", self.owner, self.model,
                    ", ".join(self.predictor_.labels), self.predictor_.backend_)
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
        return self.run_batch(1) > 0

    def run_batch(self, limit: int | None = None, *, defer_outputs: bool = False) -> int:
        """Claim up to ``limit`` jobs (default ``batch_studies``), score them together and
        return how many were claimed (0: the queue is empty).

        Each study is on the worklist before its standard outputs are built; they are
        built before this returns, unless ``defer_outputs`` (then
        :meth:`build_pending_outputs` builds them: :meth:`run` does).

        Claims whatever is queued now and never waits for a full batch, so a lone study is
        scored at once. The studies share one lung segmentation and one ``predict``; each
        is then finished, and its job completed or failed, on its own (see
        :func:`~radiolens.worker.scoring.score_studies`): each job keeps its own lease,
        attempt and failure. With ``limit=1`` this is :meth:`run_once`.

        Raises:
            WorklistError, OSError, ResourceFault: a resource fault; every job of the
                batch not yet finished was handed back without counting the attempt.
            Exception: finishing a job failed otherwise (for example its lease was lost);
                raised after the other jobs of the batch were finished.
        """
        from radiolens.worklist import claim_jobs

        limit = self.batch_studies if limit is None else limit
        if limit < 1:
            raise ConfigError(f"batch_studies must be at least 1, got {limit}")
        self._release_held()
        jobs = claim_jobs(self.engine_, self.owner, self.lease_seconds, limit=limit)
        if jobs:
            self._score_jobs([(job.id, job.study_fk, job.attempts) for job in jobs])
        if not defer_outputs:
            self.build_pending_outputs()
        return len(jobs)

    def _score_jobs(self, jobs: list[tuple[int, int, int]]) -> None:
        """Score claimed jobs ``(id, study_fk, attempt)``; hand back the unfinished ones on
        a resource fault."""
        unfinished = {job_id for job_id, _, _ in jobs}
        try:
            self._score_claimed(jobs, unfinished)
        except Exception as exc:
            reason = resource_fault(exc)
            if reason is None:
                raise
            for job_id, _, _ in jobs:
                if job_id in unfinished:
                    logger.warning("job %d: %s; handing it back (attempt not counted)",
                                   job_id, reason)
                    self._release(job_id, reason)
            raise

    def _score_claimed(self, jobs: list[tuple[int, int, int]], unfinished: set[int]) -> None:
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from radiolens.worker.scoring import score_studies
        from radiolens.worklist import Study, fail_job, list_instances

        with Session(self.engine_) as session:
            fks = [fk for _, fk, _ in jobs]
            uids = {fk: uid for fk, uid in session.execute(
                select(Study.id, Study.study_instance_uid).where(Study.id.in_(fks)))}
        todo: list[tuple[int, str, int]] = []
        for job_id, study_fk, attempt in jobs:
            uid = uids.get(study_fk)
            if uid is None:
                fail_job(self.engine_, job_id, self.owner, "study row missing")
                unfinished.discard(job_id)
            else:
                todo.append((job_id, uid, attempt))
        if not todo:
            return
        if len(todo) > 1:
            logger.info("scoring %d studies together", len(todo))
        t0 = claimed = time.monotonic()
        studies: list[tuple[str, list[str]]] = []
        scoring: list[tuple[int, str, int]] = []
        for job_id, uid, attempt in todo:
            try:
                studies.append((uid, [i.path for i in list_instances(self.engine_, uid)]))
            except Exception as exc:
                if resource_fault(exc):
                    raise
                self._finish_job(job_id, uid, attempt, exc, t0)
                unfinished.discard(job_id)
                continue
            scoring.append((job_id, uid, attempt))
        first_error: Exception | None = None
        for index, outcome in score_studies(self.data_dir, studies, self.predictor_,
                                            self.policy_, str(self.model),
                                            heatmaps=self.heatmaps, lungs=self.lungs_,
                                            defer_outputs=True):
            job_id, uid, attempt = scoring[index]
            if len(jobs) > 1 and time.monotonic() - claimed > self.lease_seconds / 2:
                claimed = time.monotonic()
                self._renew(unfinished)
            try:
                self._finish_job(job_id, uid, attempt, outcome, t0)
            except Exception as exc:
                if resource_fault(exc):
                    raise
                # not the fault of the batch's other studies: finish them, then raise
                logger.error("job %d (study %s) could not be finished: %s", job_id, uid, exc)
                first_error = first_error or exc
            unfinished.discard(job_id)
        if first_error is not None:
            raise first_error

    def _renew(self, job_ids: set[int]) -> None:
        """Renew the leases of a batch's jobs still to finish (a long batch)."""
        from radiolens.worklist import renew_lease

        for job_id in sorted(job_ids):
            try:
                renew_lease(self.engine_, job_id, self.owner, self.lease_seconds)
            except RadiolensError as exc:
                if resource_fault(exc):
                    raise
                logger.warning("job %d: lease not renewed: %s", job_id, exc)

    def _finish_job(self, job_id: int, uid: str, attempt: int, outcome: Any,
                    t0: float) -> None:
        """Complete, fail or mark needs-check one job from its scoring outcome (``t0``:
        ``time.monotonic()`` when its batch started)."""
        from radiolens.worker.scoring import NeedsCheck, relative_message
        from radiolens.worklist import (
            complete_job,
            fail_job,
            mark_needs_check,
        )

        if isinstance(outcome, NeedsCheck):
            logger.warning("study %s needs a check of its images: %s", uid, outcome.reason)
            mark_needs_check(self.engine_, job_id, self.owner, outcome.reason)
            return
        if isinstance(outcome, Exception):  # a model or file failure must not kill the worker
            reason = relative_message(f"{type(outcome).__name__}: {outcome}", self.data_dir)
            logger.error("study %s failed (attempt %d): %s", uid, attempt, reason,
                         exc_info=None if isinstance(outcome, RadiolensError) else outcome)
            fail_job(self.engine_, job_id, self.owner, reason,
                     permanent=isinstance(outcome, ImageReadError))
            return
        scored = outcome
        self._later.pop(uid, None)  # an earlier scoring's outputs are not wanted now
        complete_job(self.engine_, job_id, self.owner, model=str(self.model),
                     model_version=self.predictor_.info_.radiolens_version,
                     findings=scored.findings, flags=scored.flags, priority=scored.priority,
                     thresholds=scored.thresholds, heatmap_paths=scored.heatmap_paths,
                     draft_text=scored.draft_text, sr_path=scored.sr_path,
                     image_check=scored.image_check, lungs=scored.lungs,
                     outputs_pending=scored.pending)
        logger.info("scored study %s in %.2f s: priority %d, flags %s", uid,
                    time.monotonic() - t0, scored.priority, scored.flags or "none")
        if scored.image_check:
            logger.warning("study %s: check image: %s", uid, scored.image_check)
        if scored.pending:
            self._later[uid] = (time.monotonic(), scored)
        else:
            self._settle_outputs(uid, scored)

    def build_pending_outputs(self, overdue_only: bool = False) -> int:
        """Build the standard outputs of the studies this worker scored (oldest first),
        record them and queue their delivery; return how many studies were done.

        ``overdue_only``: only those that have waited ``output_lag_s`` or longer.

        Raises:
            WorklistError, OSError: a resource fault; the studies not done stay pending.
        """
        from radiolens.worker.scoring import segment_pending

        now = time.monotonic()
        due = [(uid, scored) for uid, (since, scored) in self._later.items()
               if not overdue_only or now - since >= self.output_lag_s]
        segmentations = segment_pending(self.lungs_, [scored for _, scored in due])
        for (uid, scored), segs in zip(due, segmentations, strict=True):
            scored.build_pending(segs)
            self._settle_outputs(uid, scored)
            self._later.pop(uid, None)
        return len(due)

    def _settle_outputs(self, uid: str, scored: Any) -> None:
        """Record a scored study's built outputs and queue their delivery."""
        from radiolens.worklist import complete_outputs

        complete_outputs(self.engine_, uid, errors=scored.output_errors,
                         sr_path=scored.sr_path, lungs=scored.lungs,
                         image_check=scored.image_check, draft_text=scored.draft_text)
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
            complete_outputs,
            list_instances,
            record_output_errors,
            studies_missing_outputs,
        )

        built = 0
        for study in studies_missing_outputs(self.engine_, skip=list(self._later)):
            uid = study.study_instance_uid
            missing = set(study.output_errors or {}) | set(study.outputs_pending or [])
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
            complete_outputs(self.engine_, uid, errors=scored.output_errors,
                             sr_path=scored.sr_path, heatmap_paths=scored.heatmap_paths,
                             lungs=scored.lungs, image_check=scored.image_check,
                             draft_text=scored.draft_text)
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
                busy = self.run_batch(defer_outputs=True) > 0
                # scoring first: outputs when the queue is empty, or once overdue
                self.build_pending_outputs(overdue_only=busy)
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
    worker = Worker(**_with_batch_setting(options))
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


def _with_batch_setting(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``batch_studies`` from :data:`BATCH_STUDIES_ENV` when they lack it.

    Raises:
        ConfigError: the variable is not a whole number of at least 1.
    """
    text = os.environ.get(BATCH_STUDIES_ENV, "").strip()
    if "batch_studies" in options or not text:
        return options
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{BATCH_STUDIES_ENV} must be a whole number of at least 1 "
                          f"(studies scored together), got {text!r}")
    return {**options, "batch_studies": int(text)}
