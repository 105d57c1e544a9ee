"""Entry points of the receiver and API processes (``multiprocessing`` spawn targets).

Each part runs in its own process under its own address-space limit, so a runaway part
fails alone (MemoryError) instead of taking the others down. Each opens its own database
engine, sets ``ready`` once it listens, and stops cleanly on SIGTERM (SIGINT is left to
the supervisor, which stops every part with SIGTERM).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["run_api_process", "run_receiver_process"]

logger = logging.getLogger(__name__)


def _enter(verbose: int, quiet: bool, memory_limit_mb: int) -> threading.Event:
    """Logging, memory limit and signals of a part process; returns its stop event."""
    import signal

    from radiolens.logsafe import setup_logging
    from radiolens.worker.runner import limit_memory

    setup_logging(verbose, quiet)
    limit_memory(memory_limit_mb)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return stop


def run_receiver_process(options: dict[str, Any], ready: Any, verbose: int = 0,
                         quiet: bool = False, memory_limit_mb: int = 0) -> None:
    """Run the DICOM receiver until SIGTERM.

    Args:
        options: ``data_dir``, ``db``, ``ae_title``, ``port``, ``host``, ``max_pixels``,
            ``require_called_aet``, ``tls_cert``, ``tls_key`` and ``reuse_port`` (other
            receiver processes share the port).
        ready: a ``multiprocessing`` Event set once the receiver listens.
    """
    from radiolens.receiver import DicomReceiver
    from radiolens.worklist import make_engine

    stop = _enter(verbose, quiet, memory_limit_mb)
    receiver = DicomReceiver(options["data_dir"], make_engine(options["db"]),
                             ae_title=options["ae_title"], port=options["port"],
                             host=options["host"], max_pixels=options["max_pixels"],
                             require_called_aet=options["require_called_aet"],
                             tls_cert=options["tls_cert"], tls_key=options["tls_key"],
                             reuse_port=options.get("reuse_port", False))
    receiver.start(block=False)
    ready.set()
    try:
        stop.wait()
    finally:
        receiver.stop()


def run_api_process(options: dict[str, Any], ready: Any, worker_down: Any, verbose: int = 0,
                    quiet: bool = False, memory_limit_mb: int = 0) -> None:
    """Serve the API and web UI until SIGTERM.

    Args:
        options: ``data_dir``, ``db``, ``token``, ``model_name``, ``ae_title``,
            ``dicom_port``, ``host``, ``port``.
        ready: a ``multiprocessing`` Event set once the API accepts connections.
        worker_down: a shared ``multiprocessing`` Value, true while the supervisor
            restarts the worker (``/health`` then says so).
    """
    import uvicorn

    from radiolens.runtime.settings import API_SHUTDOWN_GRACE_S
    from radiolens.serve import create_app
    from radiolens.worklist import make_engine

    stop = _enter(verbose, quiet, memory_limit_mb)
    app = create_app(options["data_dir"], make_engine(options["db"]), options["token"],
                     model_name=options["model_name"], ae_title=options["ae_title"],
                     dicom_port=options["dicom_port"], max_image_pixels=options["max_pixels"],
                     forward_to=options["forward_to"], card_figures=options["card_figures"],
                     organization=options["organization"],
                     health_reasons=lambda: ["worker restarting"] if worker_down.value else [])
    server = uvicorn.Server(uvicorn.Config(app, host=options["host"], port=options["port"],
                                           log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=API_SHUTDOWN_GRACE_S,
                                           ssl_certfile=options["tls_cert"],
                                           ssl_keyfile=options["tls_key"]))
    thread = threading.Thread(target=server.run, name="radiolens-api", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        stop.wait(0.05)
    if not thread.is_alive():
        raise SystemExit(1)
    ready.set()
    stop.wait()
    server.should_exit = True
    thread.join(timeout=10)
