"""Start or join a Ray cluster for an archive run (``--ray [ADDRESS]``; needs the
``scale`` extra).

Without an address a local Ray instance is started for the run (127.0.0.1 only, a one-off
authentication token, one CPU per core) and stopped afterwards. With an address
(``auto``, ``HOST:PORT`` of a head node, ``ray://HOST:PORT``) the run joins that cluster
and leaves it running. If Ray is already initialised in this process (a notebook, a
test), that session is used as is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import sys
from collections.abc import Iterator
from typing import Any

from radiolens.errors import ConfigError, MissingDependencyError, RadiolensError

__all__ = ["LOCAL", "import_ray", "is_ray_address", "pool_size", "ray_session",
           "worker_failure"]

logger = logging.getLogger(__name__)

#: The ``--ray`` value that means "start a local instance".
LOCAL = "local"

#: How long an actor pool may take to start before the run fails.
ACTOR_START_TIMEOUT_S = 600

_HOST_PORT = re.compile(r"^[\w.\-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")


def is_ray_address(text: str) -> bool:
    """Whether ``text`` reads as a Ray address: ``local``, ``auto``, ``HOST:PORT`` or
    ``SCHEME://...``."""
    return text in (LOCAL, "auto") or "://" in text or bool(_HOST_PORT.match(text))


def import_ray() -> Any:
    """The ``ray`` module, with Ray Data.

    Raises:
        MissingDependencyError: Ray is not installed (``pip install 'radiolens[scale]'``).
    """
    try:
        import ray
        import ray.data  # Ray Data is part of the extra
    except ImportError:
        raise MissingDependencyError("ray[data]", "scale") from None
    return ray


def _set_up_ray_data(ray: Any) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # radiolens shows its own
    ctx.execution_options.preserve_order = True  # rows come back in input order
    # start the whole actor pool before the first batch (else the first actor to start
    # may score everything while the others load), and fail clearly if it cannot start
    ctx.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """Ray's INFO chatter (execution plans, "Started a local Ray instance") only at -vv."""
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    # the progress module only says that Ray's bars are off (radiolens shows its own)
    quiet = {"ray": logging.WARNING, "ray.data": logging.WARNING,
             "ray.data._internal.progress": logging.ERROR}
    loggers = [logging.getLogger(n) for n in quiet]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(quiet[lg.name])
    try:
        yield
    finally:
        for lg, level in zip(loggers, before, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, initialised for the block: ``address`` ``None``/``"local"`` starts a local
    instance (``num_cpus``: default the number of cores) and stops it afterwards; any
    other address joins that cluster.

    Yields:
        The ``ray`` module.

    Raises:
        MissingDependencyError: Ray is not installed.
        ConfigError: the cluster at ``address`` cannot be reached.
    """
    if address in (None, LOCAL) and "ray" not in sys.modules:
        _private_instance_settings()
    ray = import_ray()
    with _quiet_loggers():
        if ray.is_initialized():
            _set_up_ray_data(ray)
            yield ray
            return
        with _started(ray, address, num_cpus):
            yield ray


def _private_instance_settings() -> None:
    """Settings Ray reads when it is imported (imported already, it keeps its own)."""
    # Ray's "no cluster" switch: the instance listens on 127.0.0.1 only, not on every
    # interface. Not for joining a cluster: its nodes could not reach this driver.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if "RAY_AUTH_MODE" not in os.environ:
        # a fresh token, in the instance's processes' environment only (not in ~/.ray),
        # so that other local users cannot run code in it
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


@contextlib.contextmanager
def _started(ray: Any, address: str | None, num_cpus: int | None) -> Iterator[None]:
    local = address in (None, LOCAL)
    _init(ray, address, local, num_cpus)
    try:
        _set_up_ray_data(ray)
        logger.info("Ray: %s with %d node(s), %g CPU(s)",
                    "a local instance" if local else f"the cluster at {address}",
                    len([n for n in ray.nodes() if n.get("Alive")]),
                    ray.cluster_resources().get("CPU", 0))
        yield
    finally:
        ray.shutdown()


def _init(ray: Any, address: str | None, local: bool, num_cpus: int | None) -> None:
    quiet = logging.INFO if logger.isEnabledFor(logging.DEBUG) else logging.WARNING
    if local:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False, logging_level=quiet)
        return
    assert address is not None
    _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=quiet)
    except ray.exceptions.AuthenticationError:
        raise ConfigError(
            f"the Ray cluster at {address} needs its authentication token: set "
            "RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token, as on its "
            "nodes") from None
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({_first_line(exc)}); start one "
            "with `ray start --head` on the head node, or check the address (HOST:PORT of "
            "the head's GCS, or auto)") from None


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, not after Ray's minutes of retries, when nothing listens at
    ``HOST:PORT`` (``auto`` is left to Ray)."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it "
            "with `ray start --head --port=PORT` on the head node, or check the address "
            "(HOST:PORT of the head node, or auto for a cluster started on this machine)"
        ) from None


def worker_failure(exc: BaseException, what: str) -> BaseException:
    """A Ray error as the radiolens error it carries (a worker that could not load
    ``what``: a missing package on a node, a setting its backend refuses), else as is."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, RadiolensError):
            return ConfigError(f"a Ray worker could not load {what}: {cause}")
        cause = getattr(cause, "cause", None) or cause.__cause__
    found = re.findall(r"radiolens\.errors\.\w+: (.+)", str(exc))
    if found:
        return ConfigError(f"a Ray worker could not load {what}: {found[-1]}")
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__



def pool_size(ray: Any, workers: int | None, cpus_per_actor: float) -> int:
    """Actors for a pool: ``workers``, or as many as the cluster's CPUs hold. More than
    the cluster holds would wait for CPUs that never come: they are cut, with a warning."""
    total = float(ray.cluster_resources().get("CPU", 1))
    fits = max(1, int(total // cpus_per_actor))
    if workers is None:
        return fits
    if workers > fits:
        logger.warning("the Ray cluster has %g CPU(s): %d worker(s) of %g CPU fit, not %d",
                       total, fits, cpus_per_actor, workers)
        return fits
    return workers
