"""The worker: claims scoring jobs from the worklist, scores them, sends results back.

It runs in its own process under ``radiolens serve`` so that a model crash never drops a
DICOM association; a job whose worker died is retried when its lease expires, and a
study that fails three times is marked failed with the reason.
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

from radiolens.errors import ConfigError, DicomSendError, RadiolensError

__all__ = ["Worker", "parse_host_port", "run_worker_process"]

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
        forward_to: ``AE@host:port`` to send the SR (and heatmaps) back to.
        hl7_to: ``host:port`` of an HL7 MLLP listener for the ORU^R01 message.
        send_heatmaps: also forward the heatmap Secondary Capture images.
        lease_seconds: how long a claimed job stays ours without renewal.
        poll_interval: seconds between polls of an empty queue.
    """

    def __init__(self, data_dir: str | Path, db: str | None = None,
                 model: str = "builtin:pneumonia-kermany", policy_file: str | None = None,
                 forward_to: str | None = None, hl7_to: str | None = None,
                 send_heatmaps: bool = False, lease_seconds: int = 30,
                 poll_interval: float = 0.1, heatmaps: bool = True) -> None:
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
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def load(self) -> Worker:
        """Open the worklist and load the model."""
        from radiolens.dicomnet import parse_ae_address
        from radiolens.inference import Predictor
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
        logger.info("worker %s ready: model %s (%s)", self.owner, self.model,
                    ", ".join(self.predictor_.labels))
        return self

    # ---------------------------------------------------------------- scoring
    def run_once(self) -> bool:
        """Claim and score one job; False when the queue is empty."""
        from sqlalchemy.orm import Session

        from radiolens.worker.scoring import score_study
        from radiolens.worklist import (
            Study,
            claim_job,
            complete_job,
            fail_job,
            list_instances,
            queue_delivery,
        )

        job = claim_job(self.engine_, self.owner, self.lease_seconds)
        if job is None:
            return False
        with Session(self.engine_) as session:
            study = session.get(Study, job.study_fk)
            uid = study.study_instance_uid if study is not None else None
        if uid is None:
            fail_job(self.engine_, job.id, self.owner, "study row missing")
            return True
        t0 = time.perf_counter()
        try:
            paths = [inst.path for inst in list_instances(self.engine_, uid)]
            scored = score_study(self.data_dir, uid, paths, self.predictor_, self.policy_,
                                 str(self.model), heatmaps=self.heatmaps)
        except Exception as exc:  # a model or file failure must not kill the worker
            reason = f"{type(exc).__name__}: {exc}"
            logger.error("study %s failed (attempt %d): %s", uid, job.attempts, reason,
                         exc_info=not isinstance(exc, RadiolensError))
            fail_job(self.engine_, job.id, self.owner, reason)
            return True
        complete_job(self.engine_, job.id, self.owner, model=str(self.model),
                     model_version=self.predictor_.info_.radiolens_version,
                     findings=scored.findings, flags=scored.flags, priority=scored.priority,
                     thresholds=scored.thresholds, heatmap_paths=scored.heatmap_paths,
                     draft_text=scored.draft_text, sr_path=scored.sr_path)
        logger.info("scored study %s in %.2f s: priority %d, flags %s", uid,
                    time.perf_counter() - t0, scored.priority, scored.flags or "none")
        if self.forward_to and scored.sr_path:
            queue_delivery(self.engine_, uid, "dicom-sr", self.forward_to,
                           payload_path=scored.sr_path)
            if self.send_heatmaps:
                for path in scored.heatmap_sc_paths.values():
                    queue_delivery(self.engine_, uid, "dicom-sc", self.forward_to,
                                   payload_path=path)
        if self.hl7_to and scored.hl7_path:
            queue_delivery(self.engine_, uid, "hl7", self.hl7_to, payload_path=scored.hl7_path)
        return True

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
                    raise DicomSendError(f"result file {payload} is missing")
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
        """Score and deliver until ``stop`` is set."""
        stop = stop or threading.Event()
        last_delivery = 0.0
        while not stop.is_set():
            busy = self.run_once()
            if (self.forward_to or self.hl7_to) and time.monotonic() - last_delivery > 1.0:
                last_delivery = time.monotonic()
                try:
                    self.deliver_due()
                except RadiolensError as exc:
                    logger.warning("delivery pass failed: %s", exc)
            if not busy:
                stop.wait(self.poll_interval)


def run_worker_process(options: dict[str, Any], verbose: int = 0, quiet: bool = False) -> None:
    """Entry point of the worker process (``multiprocessing`` spawn target)."""
    import signal

    from radiolens.cli.main import setup_logging

    setup_logging(verbose, quiet)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us with SIGTERM
    worker = Worker(**options).load()
    worker.run(stop)
