"""The DICOM receiver: a pynetdicom Storage SCP that feeds the worklist.

For each C-STORE the receiver checks the image is one radiolens can score (a
single-frame greyscale radiograph of an accepted SOP class), writes the file
atomically to ``data_dir/dicom/<StudyInstanceUID>/<SOPInstanceUID>.dcm``, records it in
the worklist and only then answers success, so a sender never believes an image is
safe when it is not. The worklist rows of concurrent C-STOREs (from any association)
are committed together, one durable transaction for all that wait
(:class:`~radiolens.receiver.ingest.GroupCommitter`). Errors become DICOM status codes;
the server keeps serving. It never imports torch: scoring happens in the worker. The
checks and the storing are :func:`radiolens.receiver.ingest.ingest_dataset`, shared
with HTTP uploads.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy import Engine

from radiolens.errors import ConfigError, InstanceRefused, WorklistError
from radiolens.receiver.ingest import (
    CR_IMAGE_STORAGE,
    DEFAULT_MAX_GROUP,
    DEFAULT_MAX_PIXELS,
    DEFAULT_SOP_CLASSES,
    DX_PRESENTATION_STORAGE,
    DX_PROCESSING_STORAGE,
    SECONDARY_CAPTURE_STORAGE,
    STATUS_CANNOT_UNDERSTAND,
    STATUS_DECODE_FAILED,
    STATUS_MISMATCH,
    STATUS_OUT_OF_RESOURCES,
    STATUS_PROCESSING_FAILED,
    STATUS_SUCCESS,
    GroupCommitter,
    ingest_dataset,
    instance_meta,
)
from radiolens.worklist import default_db_path, open_worklist

__all__ = [
    "CR_IMAGE_STORAGE",
    "DEFAULT_SOP_CLASSES",
    "DX_PRESENTATION_STORAGE",
    "DX_PROCESSING_STORAGE",
    "SECONDARY_CAPTURE_STORAGE",
    "STATUS_CANNOT_UNDERSTAND",
    "STATUS_DECODE_FAILED",
    "STATUS_MISMATCH",
    "STATUS_OUT_OF_RESOURCES",
    "STATUS_PROCESSING_FAILED",
    "STATUS_SUCCESS",
    "DicomReceiver",
    "InstanceRefused",
    "ingest_dataset",
    "instance_meta",
]

logger = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"


class _SharedPortServer(ThreadedAssociationServer):
    """An association server whose port other receiver processes may listen on too
    (``SO_REUSEPORT``: the kernel spreads new connections over them; Linux allows it
    between processes of the same user only)."""

    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def shutdown(self) -> None:
        # started with AE.make_server, so it is not in the AE's list of servers
        socketserver.TCPServer.shutdown(self)
        self.server_close()


def set_loop_delay(event: Event, seconds: float) -> None:
    """Set the network-loop delay of a new association (an ``EVT_CONN_OPEN`` handler).

    ``_run_loop_delay`` is the knob pynetdicom's maintainers point to for its latency;
    an association without it (another pynetdicom) keeps its own.
    """
    _set_delay(event.assoc, seconds)


def _set_delay(assoc: Any, seconds: float) -> None:
    dul = getattr(assoc, "dul", None)
    if dul is not None and hasattr(dul, "_run_loop_delay"):
        dul._run_loop_delay = seconds


class LoopDelays:
    """Network-loop delays that follow how many associations are open.

    Each association's network loop wakes every ``alone`` seconds while it is the only
    one open (then its latency is the limit: the sender waits for each answer), and
    every ``shared`` seconds while several are (then the receiver's CPU is the limit, and
    each wake-up of each loop costs it). Bind :meth:`opened` to ``EVT_CONN_OPEN`` and
    :meth:`closed` to ``EVT_CONN_CLOSE``.

    Args:
        alone: seconds, one association open.
        shared: seconds, several open.
    """

    def __init__(self, alone: float, shared: float) -> None:
        self.alone = alone
        self.shared = shared
        self._open: set[Any] = set()
        self._lock = threading.Lock()

    def opened(self, event: Event) -> None:
        """An ``EVT_CONN_OPEN`` handler."""
        with self._lock:
            self._open.add(event.assoc)
            self._apply()

    def closed(self, event: Event) -> None:
        """An ``EVT_CONN_CLOSE`` handler."""
        with self._lock:
            self._open.discard(event.assoc)
            self._apply()

    @property
    def current(self) -> float:
        """The delay the open associations have now."""
        with self._lock:
            return self.alone if len(self._open) <= 1 else self.shared

    def _apply(self) -> None:
        seconds = self.alone if len(self._open) <= 1 else self.shared
        for assoc in self._open:
            _set_delay(assoc, seconds)


def _failure(status: int, comment: str) -> Dataset:
    reply = Dataset()
    reply.Status = status
    reply.ErrorComment = comment[:64]
    return reply


#: Concurrent associations accepted (pynetdicom's default is 10).
DEFAULT_MAX_ASSOCIATIONS = 32
#: Seconds a peer has to complete association negotiation (and release); pynetdicom's
#: default of 30 s lets bare TCP connections hold the slots far too long.
DEFAULT_ACSE_TIMEOUT_S = 5.0
#: The largest PDU we accept (bytes). pynetdicom's default (16 KB) splits a 130 KB
#: radiograph into 8 PDUs, each parsed in Python; 1 MiB sends most in one.
DEFAULT_MAX_PDU_SIZE = 1 << 20
#: Seconds an association's network loop sleeps when it finds nothing to do, while it
#: is the only one open. pynetdicom's default (1 ms) is paid up to three times per
#: C-STORE (the request, our response, the next request); 0.2 ms raised one
#: association's throughput by 15-18% (bench/ingest_bench.py, bench/receiver_profile.py)
#: for about 1.5% more of a core while it is idle.
DUL_POLL_S = 0.0002
#: The same while several associations are open: the receiver is then short of CPU, not
#: of latency, and pynetdicom's 1 ms gave four associations 11% more instances/s for
#: 11% less CPU per instance than 0.2 ms (bench/receiver_profile.py, the
#: ``radiolens-loop-0.2ms`` and ``radiolens-loop-1ms`` targets).
BUSY_DUL_POLL_S = 0.001


class DicomReceiver:
    """A DICOM Storage SCP that stores chest radiographs and queues them for scoring.

    The constructor only stores settings; :meth:`start` opens the worklist and listens.

    Args:
        data_dir: where files go (``data_dir/dicom/...``) and, by default, the worklist.
        engine: a worklist engine, a database path or URL; None for
            ``data_dir/worklist.db``.
        ae_title: our AE title.
        port: the TCP port (0 picks a free one; read it back from :attr:`port`).
        host: the address to listen on.
        accepted_sop_classes: the Storage SOP classes accepted (single-frame only).
        transfer_syntaxes: accepted transfer syntaxes; None for the uncompressed ones.
        require_called_aet: reject associations not addressed to ``ae_title`` (the
            default, so a study meant for another AE on the same host is not taken). To
            accept any called AE title (a PACS configured with another title for this
            node), pass ``require_called_aet=False``.
        max_pixels: refuse images whose Rows x Columns exceed this, from the header and
            before decoding (status 0xA900).
        tls_cert: a PEM certificate (chain) to serve DICOM over TLS; needs ``tls_key``.
        tls_key: the PEM private key of ``tls_cert``.
        tls_ca: PEM CA certificates; when given, callers must present a certificate
            signed by one of them (mutual TLS).
        max_associations: concurrent associations accepted.
        acse_timeout: seconds a peer has to negotiate (or release) an association; a
            bare TCP connection holds a slot this long.
        max_group: instances recorded in one worklist transaction at most (group
            commit across associations); 0 records each instance in a transaction of
            its own, as before group commit.
        max_pdu_size: the largest PDU accepted, in bytes (0: no limit); larger PDUs
            mean fewer of them to parse per image.
        reuse_port: let other receiver processes listen on the same port
            (``SO_REUSEPORT``), each taking a share of the associations: one Python
            process handles about one core's worth of C-STOREs.
        loop_delay_s: seconds an association's network loop sleeps when idle, while it
            is the only one open (:data:`DUL_POLL_S`; pynetdicom's own default is 0.001).
        busy_loop_delay_s: the same while several are open (:data:`BUSY_DUL_POLL_S`);
            see :class:`LoopDelays`.
        overlap_fsync: fsync each new file while its worklist row is recorded, rather
            than before (see ``file_sync`` in
            :func:`~radiolens.receiver.ingest.ingest_dataset`); either way a sender is
            answered only once both are durable.

    Example:
        >>> receiver = DicomReceiver("data", port=11112)
        >>> receiver.start()  # doctest: +SKIP
        >>> receiver.stats  # doctest: +SKIP
        {'associations': 0, 'echoes': 0, 'received': 0, 'duplicates': 0, 'failed': 0}
        >>> receiver.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        data_dir: str | Path,
        engine: Engine | str | Path | None = None,
        *,
        ae_title: str = "RADIOLENS",
        port: int = 11112,
        host: str = "0.0.0.0",
        accepted_sop_classes: Sequence[str] = DEFAULT_SOP_CLASSES,
        transfer_syntaxes: Sequence[str] | None = None,
        require_called_aet: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        tls_ca: str | Path | None = None,
        max_associations: int = DEFAULT_MAX_ASSOCIATIONS,
        acse_timeout: float = DEFAULT_ACSE_TIMEOUT_S,
        max_group: int = DEFAULT_MAX_GROUP,
        max_pdu_size: int = DEFAULT_MAX_PDU_SIZE,
        reuse_port: bool = False,
        loop_delay_s: float = DUL_POLL_S,
        busy_loop_delay_s: float = BUSY_DUL_POLL_S,
        overlap_fsync: bool = True,
    ) -> None:
        if max_associations < 1 or acse_timeout <= 0 or min(max_group, max_pdu_size) < 0 \
                or not 0 < loop_delay_s <= 1 or not 0 < busy_loop_delay_s <= 1:
            raise ConfigError("max_associations must be at least 1, acse_timeout positive, "
                              "max_group and max_pdu_size at least 0, loop_delay_s and "
                              "busy_loop_delay_s in (0, 1] seconds")
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ConfigError("several receiver processes on one port need SO_REUSEPORT "
                              "(Linux, macOS, BSD); run one receiver process here")
        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("DICOM TLS needs both tls_cert and tls_key (PEM files)")
        self.data_dir = Path(data_dir)
        self.engine = engine
        self.ae_title = ae_title
        self.host = host
        self.requested_port = port
        self.accepted_sop_classes = tuple(accepted_sop_classes)
        self.transfer_syntaxes = tuple(transfer_syntaxes or DEFAULT_TRANSFER_SYNTAXES)
        self.require_called_aet = require_called_aet
        self.max_pixels = max_pixels
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.tls_ca = tls_ca
        self.max_associations = max_associations
        self.acse_timeout = acse_timeout
        self.max_group = max_group
        self.max_pdu_size = max_pdu_size
        self.reuse_port = reuse_port
        self.loop_delay_s = loop_delay_s
        self.busy_loop_delay_s = busy_loop_delay_s
        self.loop_delays_ = LoopDelays(loop_delay_s, busy_loop_delay_s)
        self.overlap_fsync = overlap_fsync
        self.file_sync_: ThreadPoolExecutor | None = None
        self.engine_: Engine | None = None
        self.committer_: GroupCommitter | None = None
        self.ae_: AE | None = None
        self._server: ThreadedAssociationServer | None = None
        self._owns_engine = False
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stats = dict.fromkeys(
            ("associations", "echoes", "received", "duplicates", "failed"), 0
        )

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port actually listened on (the requested one before :meth:`start`)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self.requested_port

    @property
    def running(self) -> bool:
        """True while the server listens."""
        return self._server is not None

    @property
    def stats(self) -> dict[str, int]:
        """Counters: associations, echoes, received (new), duplicates, failed."""
        with self._lock:
            return dict(self._stats)

    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _handlers(self) -> list[Any]:
        return [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_CONN_OPEN, self.loop_delays_.opened),
            (evt.EVT_CONN_CLOSE, self.loop_delays_.closed),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),
        ]

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = self.require_called_aet
        # A connection that never sends an A-ASSOCIATE-RQ (a port scan, a load balancer's
        # TCP check) holds one of the association slots until acse_timeout: keep it short,
        # or a handful of probes locks every PACS out ("Local Limit Exceeded").
        ae.maximum_associations = self.max_associations
        ae.acse_timeout = self.acse_timeout
        ae.maximum_pdu_size = self.max_pdu_size
        for sop_class in self.accepted_sop_classes:
            ae.add_supported_context(sop_class, list(self.transfer_syntaxes))
        ae.add_supported_context(VERIFICATION)
        return ae

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(certfile=str(self.tls_cert), keyfile=str(self.tls_key))
            if self.tls_ca is not None:
                context.load_verify_locations(cafile=str(self.tls_ca))
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the DICOM TLS certificate or key ({exc}); give PEM files "
                "(tls_cert, tls_key, optionally tls_ca)"
            ) from None
        return context

    def start(self, block: bool = False) -> None:
        """Open the worklist and listen for associations.

        Args:
            block: serve in this thread until :meth:`stop` (from another thread or a
                signal handler) or Ctrl-C; otherwise serve in background threads.

        Raises:
            WorklistError: the worklist database cannot be opened.
            ConfigError: the TLS certificate or key cannot be loaded.
            OSError: the port cannot be listened on.
        """
        if self._server is not None:
            raise RuntimeError("the receiver is already running; call stop() first")
        ssl_context = self._ssl_context()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(self.engine, Engine):
            self.engine_ = self.engine
        else:
            self.engine_ = open_worklist(self.engine or default_db_path(self.data_dir))
            self._owns_engine = True
        if self.max_group > 0:
            self.committer_ = GroupCommitter(self.engine_, max_group=self.max_group)
            self.committer_.start()
        if self.overlap_fsync:
            self.file_sync_ = ThreadPoolExecutor(self.max_associations,
                                                 thread_name_prefix="radiolens-fsync")
        self.ae_ = self._build_ae()
        address = (self.host, self.requested_port)
        try:
            server = self._start_server(address, ssl_context)
        except OSError as exc:
            self._stop_committer()
            self._close_engine()
            raise OSError(
                f"cannot listen on {self.host}:{self.requested_port} ({exc}): is another "
                "receiver running? choose another port"
            ) from exc
        self._server = server
        logger.info(
            "DICOM receiver %s listening on %s:%d%s, storing in %s",
            self.ae_title, self.host, self.port, " (TLS)" if ssl_context else "", self.data_dir,
        )
        if block:
            self._stopped.clear()
            try:
                while not self._stopped.wait(0.5):
                    pass
            except KeyboardInterrupt:
                logger.info("interrupted")
            finally:
                self.stop()

    def _start_server(self, address: tuple[str, int],
                      ssl_context: ssl.SSLContext | None) -> ThreadedAssociationServer:
        assert self.ae_ is not None
        if not self.reuse_port:
            server = self.ae_.start_server(address, block=False,
                                           evt_handlers=self._handlers(),
                                           ssl_context=ssl_context)
            assert server is not None
            return server
        shared = self.ae_.make_server(address, ssl_context=ssl_context,
                                      evt_handlers=self._handlers(),
                                      server_class=_SharedPortServer)
        threading.Thread(target=shared.serve_forever, name="radiolens-dicom-server",
                         daemon=True).start()
        return shared

    def _stop_committer(self) -> None:
        committer, self.committer_ = self.committer_, None
        if committer is not None:
            committer.stop()  # commits (and answers) what is queued first
        file_sync, self.file_sync_ = self.file_sync_, None
        if file_sync is not None:
            file_sync.shutdown(wait=True)  # a late handler then syncs in its own thread

    def _close_engine(self) -> None:
        if self._owns_engine and self.engine_ is not None:
            self.engine_.dispose()
        self._owns_engine = False
        self.engine_ = None

    def stop(self) -> None:
        """Stop listening, end open associations and release the worklist engine."""
        with self._stop_lock:  # stop() may race with a blocking start() that is ending
            server, self._server = self._server, None
            self._stopped.set()
            if server is not None:
                server.shutdown()
                logger.info("DICOM receiver %s stopped; %s", self.ae_title, self.stats)
            if self.ae_ is not None:
                self.ae_.shutdown()
                self.ae_ = None
            self._stop_committer()
            self._close_engine()

    def __enter__(self) -> DicomReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers ----------------------------------------------------------------------

    @staticmethod
    def _peer(event: Event) -> str:
        requestor = event.assoc.requestor
        return f"{requestor.ae_title}@{requestor.address}:{requestor.port}"

    def _on_accepted(self, event: Event) -> None:
        self._count("associations")
        logger.info("association accepted from %s", self._peer(event))

    def _on_rejected(self, event: Event) -> None:
        logger.warning("association rejected from %s", self._peer(event))

    def _on_released(self, event: Event) -> None:
        logger.debug("association released by %s", self._peer(event))

    def _on_aborted(self, event: Event) -> None:
        logger.warning("association aborted with %s", self._peer(event))

    def _on_echo(self, event: Event) -> int:
        self._count("echoes")
        logger.debug("C-ECHO from %s", self._peer(event))
        return STATUS_SUCCESS

    def _on_store(self, event: Event) -> int | Dataset:
        peer = self._peer(event)
        sop_uid = "(unknown)"
        try:
            try:
                ds = event.dataset
                ds.file_meta = event.file_meta
                sop_uid = str(ds.get("SOPInstanceUID", sop_uid))
            except Exception as exc:
                raise InstanceRefused(
                    STATUS_DECODE_FAILED, f"cannot decode dataset: {exc}"[:200]
                ) from exc
            assert self.engine_ is not None
            _, created = ingest_dataset(
                self.data_dir, self.engine_, ds,
                encoded=event.encoded_dataset(include_meta=True),
                accepted_sop_classes=self.accepted_sop_classes,
                max_pixels=self.max_pixels, committer=self.committer_,
                file_sync=self.file_sync_,
            )
        except InstanceRefused as exc:
            self._count("failed")
            logger.warning(
                "refused instance %s from %s: %s (status 0x%04X)",
                sop_uid, peer, exc.reason, exc.status,
            )
            return _failure(exc.status, exc.reason)
        except (OSError, WorklistError) as exc:
            self._count("failed")
            logger.error("could not store instance %s from %s: %s", sop_uid, peer, exc)
            # the sender sees no path of ours: only what failed
            what = (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else \
                "worklist unavailable"
            return _failure(STATUS_OUT_OF_RESOURCES, f"storage failed: {what}")
        except Exception as exc:
            self._count("failed")
            logger.exception("unexpected error storing instance %s from %s", sop_uid, peer)
            return _failure(STATUS_PROCESSING_FAILED, f"receiver error: {type(exc).__name__}")
        self._count("received" if created else "duplicates")
        logger.info(
            "%s instance %s from %s",
            "stored" if created else "duplicate of stored", sop_uid, peer,
        )
        return STATUS_SUCCESS
