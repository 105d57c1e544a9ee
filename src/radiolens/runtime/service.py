"""The triage service in one object: DICOM receiver, scoring worker, HTTP API.

The receiver, the worker and the API run as three processes (spawned), each under its own
address-space limit (``RLIMIT_AS``: ``receiver_memory_limit_mb``, ``memory_limit_mb``,
``api_memory_limit_mb``), so one cannot take the others down; the receiver never runs the
model. A part that dies is restarted with exponential backoff (1 s doubling to 60 s;
reset once it ran a minute). With ``worker_in_process=False`` (tests) all three are
threads of this process. Everything shares the worklist database, so a restart loses
nothing.
Settings and ports are checked before anything starts or the model loads. SIGTERM and
SIGINT stop every part: the worker is terminated and joined.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from radiolens.errors import ConfigError
from radiolens.runtime.settings import (
    API_SHUTDOWN_GRACE_S,
    ServiceSettings,
    read_or_create_token,
)
from radiolens.worker.faults import Backoff, resource_fault

__all__ = ["TriageService"]

logger = logging.getLogger(__name__)


class TriageService:
    """Start, supervise and stop the receiver, the worker and the API.

    Args:
        settings: the resolved settings.
        worker_in_process: run the receiver, the worker and the API as child processes
            (default) rather than threads of this process (for tests).
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
        self.card_figures: dict[str, dict[str, float]] = {}
        self._restart_backoff = Backoff(base=1.0, cap=60.0)
        self._restart_at: float | None = None  # when a dead worker is to be restarted
        self._worker_started_at = 0.0
        self._parts: dict[str, _Part] = {}  # the receiver and API processes
        self.receiver: Any = None  # DicomReceiver, or _Listening when it is a process
        self._worker_down: Any = None  # shared flag the API process shows on /health

    # ------------------------------------------------------------------ start
    def _worker_options(self) -> dict[str, Any]:
        s = self.settings
        return {"data_dir": str(s.data_dir), "db": s.db, "model": s.model,
                "policy_file": s.policy, "forward_to": s.forward_to, "hl7_to": s.hl7_to,
                "send_heatmaps": s.send_heatmaps, "heatmaps": s.heatmaps,
                "lung_model": s.lung_model, "batch_studies": s.batch_studies,
                "backend": s.backend, "output_lag_s": s.output_lag_s}

    def _start_worker(self) -> None:
        from radiolens.worker import Worker, run_worker_process

        if self.worker_in_process:
            ctx = multiprocessing.get_context("spawn")
            self._worker_proc = ctx.Process(target=run_worker_process, name="radiolens-worker",
                                            args=(self._worker_options(), self.verbose,
                                                  self.quiet, self.settings.memory_limit_mb),
                                            daemon=True)
            self._worker_proc.start()
            self._worker_started_at = time.monotonic()
        else:
            worker = Worker(**self._worker_options()).load()
            self._worker_thread = threading.Thread(target=worker.run, args=(self._stop,),
                                                   name="radiolens-worker", daemon=True)
            self._worker_thread.start()

    def _part_options(self, name: str) -> dict[str, Any]:
        s = self.settings
        db = s.db or str(self._db_url)
        if _is_receiver(name):
            return {"data_dir": str(s.data_dir), "db": db, "ae_title": s.ae_title,
                    "port": s.dicom_port, "host": s.host, "max_pixels": s.max_image_pixels,
                    "require_called_aet": s.require_called_aet, "tls_cert": s.tls_cert,
                    "tls_key": s.tls_key, "reuse_port": s.receivers > 1}
        return {"data_dir": str(s.data_dir), "db": db, "token": self.token,
                "model_name": s.model, "ae_title": s.ae_title, "dicom_port": s.dicom_port,
                "host": s.host, "port": s.http_port, "max_pixels": s.max_image_pixels,
                "forward_to": s.forward_to, "card_figures": self.card_figures,
                "organization": s.organization, "tls_cert": s.tls_cert, "tls_key": s.tls_key}

    def _start_part(self, name: str) -> None:
        """Start a receiver or the API process and wait until it listens."""
        from radiolens.runtime.parts import run_api_process, run_receiver_process

        s = self.settings
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        if _is_receiver(name):
            args: tuple[Any, ...] = (self._part_options(name), ready, self.verbose, self.quiet,
                                     s.receiver_memory_limit_mb)
            target: Any = run_receiver_process
        else:
            args = (self._part_options(name), ready, self._worker_down, self.verbose,
                    self.quiet, s.api_memory_limit_mb)
            target = run_api_process
        proc = ctx.Process(target=target, name=f"radiolens-{name}", args=args, daemon=True)
        proc.start()
        part = self._parts.setdefault(name, _Part(name))
        part.proc, part.started_at = proc, time.monotonic()
        deadline = time.monotonic() + 60
        while not ready.wait(0.1):
            if not proc.is_alive() or time.monotonic() > deadline:
                flag = "--dicom-port" if _is_receiver(name) else "--http-port"
                raise ConfigError(f"the {name} could not start (exit code {proc.exitcode}); "
                                  f"see the log above; is {flag} free?")

    def start(self) -> None:
        """Open the worklist, check the model, start the three parts."""
        import uvicorn

        from radiolens.models import read_model_info, resolve_run_dir
        from radiolens.receiver import DicomReceiver
        from radiolens.serve import create_app
        from radiolens.worker.lungs import check_lung_model
        from radiolens.worklist import default_db_path

        s = self.settings
        check_peers(s)  # bad settings and busy ports: refused before the model loads
        check_tls(s.tls_cert, s.tls_key)
        check_port_free(s.host, s.dicom_port, "DICOM", "--dicom-port")
        check_port_free(s.host, s.http_port, "HTTP", "--http-port")
        s.data_dir.mkdir(parents=True, exist_ok=True)
        info = read_model_info(resolve_run_dir(s.model))  # fail early on a bad --model
        check_lung_model(s.lung_model)  # ... and on a bad --lung-model
        self.card_figures = card_figures(info.validation)
        if s.policy:
            from radiolens.worker import load_policy

            load_policy(info.thresholds, info.urgency, s.policy)
        self._db_url = s.db or str(default_db_path(s.data_dir))
        self.engine = _open_or_degraded(self._db_url)
        self.token, self.token_created = read_or_create_token(s)
        if self.worker_in_process:
            self._worker_down = multiprocessing.get_context("spawn").Value("b", 0)
            try:
                for name in receiver_names(s.receivers):
                    self._start_part(name)
                self.receiver = _Listening(s.dicom_port)
                self._start_worker()
                self._start_part("api")
            except BaseException:
                self.stop()
                raise
            logger.info("receiving DICOM as %s on port %d; API on http://%s:%d/ ; model %s",
                        s.ae_title, s.dicom_port, s.host, s.http_port, s.model)
            return
        self.receiver = DicomReceiver(s.data_dir, self.engine, ae_title=s.ae_title,
                                      port=s.dicom_port, host=s.host,
                                      max_pixels=s.max_image_pixels,
                                      require_called_aet=s.require_called_aet,
                                      tls_cert=s.tls_cert, tls_key=s.tls_key)
        try:
            self.receiver.start(block=False)
        except OSError as exc:
            raise ConfigError(f"cannot listen for DICOM on {s.host}:{s.dicom_port} ({exc}); "
                              "choose another --dicom-port") from None
        self._start_worker()
        app = create_app(s.data_dir, self.engine, self.token, model_name=s.model,
                         ae_title=s.ae_title, dicom_port=self.receiver.port,
                         health_reasons=self.health_reasons, max_image_pixels=s.max_image_pixels,
                         forward_to=s.forward_to, card_figures=self.card_figures,
                         organization=s.organization)
        config = uvicorn.Config(app, host=s.host, port=s.http_port, log_level="warning",
                                lifespan="off", ssl_certfile=s.tls_cert, ssl_keyfile=s.tls_key,
                                timeout_graceful_shutdown=API_SHUTDOWN_GRACE_S)
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
    def check_worker(self, now: float | None = None) -> None:
        """Restart a dead worker process, waiting longer after each quick death.

        Its jobs are retried after their lease. The wait doubles from 1 s up to 60 s and
        starts again from 1 s once a worker has run for a minute.
        """
        proc = self._worker_proc
        if proc is None or proc.is_alive() or self._stop.is_set():
            return
        now = time.monotonic() if now is None else now
        if self._restart_at is None:
            if now - self._worker_started_at > 60.0:
                self._restart_backoff.reset()
            delay = self._restart_backoff.next_delay()
            self._restart_at = now + delay
            logger.error("the worker stopped (exit code %s); restarting it in %.0f s",
                         proc.exitcode, delay)
        if now >= self._restart_at:
            self._restart_at = None
            self.restarts += 1
            logger.warning("restarting the worker (restart %d)", self.restarts)
            self._start_worker()

    def check_parts(self, now: float | None = None) -> None:
        """Restart whichever part died (see :meth:`check_worker`); tell the API."""
        self.check_worker(now)
        if self._worker_down is not None:
            self._worker_down.value = 1 if self.health_reasons() else 0
        now = time.monotonic() if now is None else now
        for part in self._parts.values():
            if part.proc is None or part.proc.is_alive() or self._stop.is_set():
                continue
            if part.restart_at is None:
                if now - part.started_at > 60.0:
                    part.backoff.reset()
                delay = part.backoff.next_delay()
                part.restart_at = now + delay
                logger.error("the %s stopped (exit code %s); restarting it in %.0f s",
                             part.name, part.proc.exitcode, delay)
            if now >= part.restart_at:
                part.restart_at = None
                self.restarts += 1
                try:
                    self._start_part(part.name)
                except ConfigError as exc:
                    logger.error("%s", exc)

    def health_reasons(self) -> list[str]:
        """What the supervisor knows is wrong: ``["worker restarting"]`` or nothing."""
        proc = self._worker_proc
        if proc is not None and not proc.is_alive() and not self._stop.is_set():
            return ["worker restarting"]
        return []

    def wait_until_scored(self, uids: Iterable[str], timeout: float = 300.0) -> dict[str, str]:
        """Wait until every study is ``scored`` or ``failed``; returns uid → status."""
        from radiolens.worklist import get_study

        pending = set(uids)
        status: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline and not self._stop.is_set():
            self.check_parts()
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

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT stop the service cleanly (call before :meth:`start`)."""
        import signal

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def serve_forever(self) -> None:
        """Supervise until :meth:`stop` or a signal (see :meth:`install_signal_handlers`)."""
        while not self._stop.is_set():
            self.check_parts()
            self._stop.wait(0.5)
        logger.info("stopping")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        logger.info("signal %d received", signum)
        self._stop.set()

    # ------------------------------------------------------------------- stop
    def stop(self) -> None:
        """Stop the API, the receiver and the worker (in that order)."""
        self._stop.set()
        server = getattr(self, "_server", None)
        if server is not None:
            server.should_exit = True
            self._api_thread.join(timeout=10)
        for part in self._parts.values():  # the API first, then the receiver
            if part.proc is not None and part.name == "api":
                _terminate(part.proc)
        for part in self._parts.values():
            if part.proc is not None and _is_receiver(part.name):
                _terminate(part.proc)
        receiver = getattr(self, "receiver", None)
        if receiver is not None:
            receiver.stop()
        if self._worker_proc is not None:
            _terminate(self._worker_proc)
        if self._worker_thread is not None:
            self._worker_thread.join(timeout=10)


def receiver_names(count: int) -> list[str]:
    """The part names of ``count`` receiver processes: receiver, receiver-2, ..."""
    return ["receiver"] + [f"receiver-{i}" for i in range(2, count + 1)]


def _is_receiver(name: str) -> bool:
    return name == "receiver" or name.startswith("receiver-")


def check_peers(settings: ServiceSettings) -> None:
    """Refuse unusable ``forward_to`` / ``hl7_to`` settings with a :class:`ConfigError`."""
    from radiolens.dicomnet import parse_ae_address
    from radiolens.worker import parse_host_port

    if settings.forward_to:
        try:
            parse_ae_address(settings.forward_to)
        except ConfigError as exc:
            raise ConfigError(f"--forward-to: {exc}") from None
    if settings.hl7_to:
        try:
            parse_host_port(settings.hl7_to)
        except ConfigError as exc:
            raise ConfigError(f"--hl7-to: {exc}") from None


def check_port_free(host: str, port: int, what: str, flag: str) -> None:
    """Refuse a port another program listens on, before anything loads.

    Raises:
        ConfigError: the port is in use or cannot be bound here.
    """
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen for {what} on {host}:{port} "
                              f"({exc.strerror or exc}); choose another {flag}") from None


def _open_or_degraded(url: str) -> Any:
    """Open the worklist; on a read-only or unavailable database, serve degraded."""
    from radiolens.errors import WorklistError
    from radiolens.worklist import make_engine, open_worklist

    try:
        return open_worklist(url)
    except WorklistError as exc:
        reason = resource_fault(exc)
        if reason is None:
            raise
        logger.error("the worklist database is not usable (%s); serving degraded until it "
                     "is writable again", reason)
        return make_engine(url)


@dataclass
class _Part:
    """A supervised part process (receiver or API) and its restart state."""

    name: str
    proc: Any = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=60.0))


@dataclass
class _Listening:
    """Stands for a receiver running in another process: its port."""

    port: int

    def stop(self) -> None:
        """The supervisor stops the process itself."""


def _terminate(proc: Any) -> None:
    """SIGTERM, join up to 10 s, then SIGKILL and join."""
    if proc.is_alive():
        proc.terminate()
    proc.join(timeout=10)
    if proc.is_alive():
        logger.warning("%s did not stop within 10 s; killing it", proc.name)
        proc.kill()
        proc.join(timeout=10)


def card_figures(validation: Any) -> dict[str, dict[str, float]]:
    """The model card's validation sensitivity and specificity per label (from model.json)."""
    out: dict[str, dict[str, float]] = {}
    labels = (validation or {}).get("labels", {}) if isinstance(validation, dict) else {}
    for label, metrics in labels.items():
        if isinstance(metrics, dict):
            out[str(label)] = {k: float(metrics[k]) for k in ("sensitivity", "specificity")
                               if isinstance(metrics.get(k), int | float)}
    return out


def check_tls(cert: str | None, key: str | None) -> None:
    """Refuse half a TLS setting, or files that are not there, before anything starts."""
    from pathlib import Path

    if (cert is None) != (key is None):
        raise ConfigError("TLS needs both --tls-cert and --tls-key (PEM files)")
    for flag, value in (("--tls-cert", cert), ("--tls-key", key)):
        if value is not None and not Path(value).is_file():
            raise ConfigError(f"{flag} {value}: no such file")
