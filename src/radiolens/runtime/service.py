"""The triage service in one object: DICOM receiver, scoring worker, HTTP API.

The receiver (a thread) never runs the model; the worker runs in its own process and is
restarted if it dies; the API is served by uvicorn in a thread. Everything shares the
worklist database, so a restart loses nothing.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Iterable
from typing import Any

from radiolens.errors import ConfigError
from radiolens.runtime.settings import ServiceSettings, read_or_create_token

__all__ = ["TriageService"]

logger = logging.getLogger(__name__)


class TriageService:
    """Start, supervise and stop the receiver, the worker and the API.

    Args:
        settings: the resolved settings.
        worker_in_process: run the worker in a child process (default) rather than a
            thread of this process.
        verbose, quiet: logging flags handed to the worker process.

    Example:
        >>> svc = TriageService(load_settings({"data_dir": "/tmp/rl"}))  # doctest: +SKIP
        >>> svc.start(); svc.wait_until_scored(uids); svc.stop()         # doctest: +SKIP
    """

    def __init__(self, settings: ServiceSettings, *, worker_in_process: bool = True,
                 verbose: int = 0, quiet: bool = False) -> None:
        self.settings = settings
        self.worker_in_process = worker_in_process
        self.verbose = verbose
        self.quiet = quiet
        self._worker_proc: Any = None
        self._worker_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.restarts = 0

    # ------------------------------------------------------------------ start
    def _worker_options(self) -> dict[str, Any]:
        s = self.settings
        return {"data_dir": str(s.data_dir), "db": s.db, "model": s.model,
                "policy_file": s.policy, "forward_to": s.forward_to, "hl7_to": s.hl7_to,
                "send_heatmaps": s.send_heatmaps, "heatmaps": s.heatmaps}

    def _start_worker(self) -> None:
        from radiolens.worker import Worker, run_worker_process

        if self.worker_in_process:
            ctx = multiprocessing.get_context("spawn")
            self._worker_proc = ctx.Process(target=run_worker_process, name="radiolens-worker",
                                            args=(self._worker_options(), self.verbose,
                                                  self.quiet), daemon=True)
            self._worker_proc.start()
        else:
            worker = Worker(**self._worker_options()).load()
            self._worker_thread = threading.Thread(target=worker.run, args=(self._stop,),
                                                   name="radiolens-worker", daemon=True)
            self._worker_thread.start()

    def start(self) -> None:
        """Open the worklist, check the model, start the three parts."""
        import uvicorn

        from radiolens.models import read_model_info, resolve_run_dir
        from radiolens.receiver import DicomReceiver
        from radiolens.serve import create_app
        from radiolens.worklist import default_db_path, open_worklist

        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        info = read_model_info(resolve_run_dir(s.model))  # fail early on a bad --model
        if s.policy:
            from radiolens.worker import load_policy

            load_policy(info.thresholds, info.urgency, s.policy)
        self.engine = open_worklist(s.db or default_db_path(s.data_dir))
        self.token, self.token_created = read_or_create_token(s)
        self.receiver = DicomReceiver(s.data_dir, self.engine, ae_title=s.ae_title,
                                      port=s.dicom_port, host=s.host)
        try:
            self.receiver.start(block=False)
        except OSError as exc:
            raise ConfigError(f"cannot listen for DICOM on {s.host}:{s.dicom_port} ({exc}); "
                              "choose another --dicom-port") from None
        self._start_worker()
        app = create_app(s.data_dir, self.engine, self.token, model_name=s.model,
                         ae_title=s.ae_title, dicom_port=self.receiver.port)
        config = uvicorn.Config(app, host=s.host, port=s.http_port, log_level="warning",
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._api_thread = threading.Thread(target=self._server.run, name="radiolens-api",
                                            daemon=True)
        self._api_thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._api_thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the API could not start on {s.host}:{s.http_port}; "
                                  "is the port in use? choose another --http-port")
            time.sleep(0.05)
        logger.info("receiving DICOM as %s on port %d; API on http://%s:%d/ ; model %s",
                    s.ae_title, self.receiver.port, s.host, s.http_port, s.model)

    @property
    def url(self) -> str:
        """Base URL of the API and web UI."""
        return f"http://{self.settings.host}:{self.settings.http_port}"

    # -------------------------------------------------------------- supervise
    def check_worker(self) -> None:
        """Restart the worker process if it died (its jobs are retried after the lease)."""
        proc = self._worker_proc
        if proc is not None and not proc.is_alive() and not self._stop.is_set():
            self.restarts += 1
            logger.error("the worker stopped (exit code %s); restarting it (restart %d)",
                         proc.exitcode, self.restarts)
            self._start_worker()

    def wait_until_scored(self, uids: Iterable[str], timeout: float = 300.0) -> dict[str, str]:
        """Wait until every study is ``scored`` or ``failed``; returns uid → status."""
        from radiolens.worklist import get_study

        pending = set(uids)
        status: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            self.check_worker()
            for uid in list(pending):
                study = get_study(self.engine, uid)
                if study is not None and study.status in ("scored", "failed"):
                    status[uid] = study.status
                    pending.discard(uid)
            if pending:
                time.sleep(0.1)
        for uid in pending:
            study = get_study(self.engine, uid)
            status[uid] = study.status if study is not None else "missing"
        return status

    def serve_forever(self) -> None:
        """Supervise until Ctrl-C."""
        try:
            while not self._stop.is_set():
                self.check_worker()
                self._stop.wait(1.0)
        except KeyboardInterrupt:
            logger.info("stopping")

    # ------------------------------------------------------------------- stop
    def stop(self) -> None:
        """Stop the API, the receiver and the worker (in that order)."""
        self._stop.set()
        server = getattr(self, "_server", None)
        if server is not None:
            server.should_exit = True
            self._api_thread.join(timeout=10)
        receiver = getattr(self, "receiver", None)
        if receiver is not None:
            receiver.stop()
        if self._worker_proc is not None:
            self._worker_proc.terminate()
            self._worker_proc.join(timeout=10)
            if self._worker_proc.is_alive():
                self._worker_proc.kill()
        if self._worker_thread is not None:
            self._worker_thread.join(timeout=10)
