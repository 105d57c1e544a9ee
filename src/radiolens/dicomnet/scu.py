"""DICOM network client: C-STORE files or datasets to a peer, and C-ECHO it.

Used by ``radiolens send FILES --to AE@host:port`` and to send SR results back to the
PACS. Peers are written ``AE@host:port`` (see :func:`parse_ae_address`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association

from radiolens.errors import ConfigError, DicomSendError

__all__ = [
    "DEFAULT_CALLING_AE",
    "AeAddress",
    "SendReport",
    "echo",
    "parse_ae_address",
    "send_dataset",
    "send_files",
]

logger = logging.getLogger(__name__)

#: The AE title radiolens uses when it calls a peer. It differs from the receiver's
#: default called AE title (``RADIOLENS``), so a PACS can tell the two apart.
DEFAULT_CALLING_AE = "RADIOLENS-SCU"
_VERIFICATION = "1.2.840.10008.1.1"
_MAX_CONTEXTS = 128  # an SCU may propose at most 128 presentation contexts
_SUCCESS_OR_WARNING = {0x0000, 0x0001, 0x0107, 0x0116, 0xB000, 0xB006, 0xB007}
_ADDRESS = re.compile(r"^(?P<ae>[^@]+)@(?P<host>\[[^\]]+\]|[^:@\[\]]+):(?P<port>\d+)$")


@dataclass(frozen=True)
class AeAddress:
    """A DICOM peer: its AE title, host and port.

    Example:
        >>> str(AeAddress("PACS", "10.0.0.5", 104))
        'PACS@10.0.0.5:104'
    """

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def _check_ae_title(title: str, what: str) -> str:
    if not title.strip() or len(title) > 16 or "\\" in title or not title.isprintable():
        raise ConfigError(
            f"invalid {what} AE title {title!r}: use 1 to 16 printable characters, "
            "no backslash"
        )
    return title.strip()


def parse_ae_address(text: str | AeAddress) -> AeAddress:
    """Parse ``AE@host:port`` (IPv6 hosts in brackets: ``PACS@[::1]:104``).

    Raises:
        ConfigError: the text is not of that form, or the title or port is invalid.

    Example:
        >>> parse_ae_address("ORTHANC@localhost:4242")
        AeAddress(ae_title='ORTHANC', host='localhost', port=4242)
    """
    if isinstance(text, AeAddress):
        return text
    match = _ADDRESS.match(text.strip())
    if match is None:
        raise ConfigError(
            f"cannot read the DICOM peer {text!r}: write it as AE@host:port, "
            "e.g. PACS@10.0.0.5:104"
        )
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ConfigError(f"invalid port {port} in {text!r}: use 1 to 65535")
    host = match["host"].strip("[]")
    return AeAddress(_check_ae_title(match["ae"], "called"), host, port)


@dataclass
class SendReport:
    """What :func:`send_files` did.

    Attributes:
        sent: the files the peer accepted (status success or warning).
        failed: ``(file, reason)`` for every file not stored by the peer.
    """

    sent: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every file was sent."""
        return not self.failed


def _make_ae(calling_ae: str, timeout: float) -> AE:
    ae = AE(ae_title=_check_ae_title(calling_ae, "calling"))
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


def _associate(ae: AE, to: AeAddress, *, allow_no_contexts: bool = False) -> Association:
    """Associate, or raise; with ``allow_no_contexts`` return the aborted association when
    the peer only refused every proposed presentation context."""
    assoc = ae.associate(to.host, to.port, ae_title=to.ae_title)
    if assoc.is_established:
        logger.debug("association with %s established", to)
        return assoc
    if allow_no_contexts and assoc.rejected_contexts and not assoc.accepted_contexts:
        return assoc
    if assoc.is_rejected:
        raise DicomSendError(
            f"{to} rejected the association from {ae.ae_title!r}: check the called AE "
            f"title {to.ae_title!r} and that the peer knows {ae.ae_title!r} as a modality"
        )
    raise DicomSendError(
        f"cannot reach the DICOM peer {to}: check that it runs and that host and port are "
        "right (no association; connection refused, timed out or aborted)"
    )


def _status_text(status: Dataset) -> tuple[bool, str]:
    if "Status" not in status:
        return False, "no response from the peer (timeout or association aborted)"
    code = int(status.Status)
    if code in _SUCCESS_OR_WARNING:
        return True, f"0x{code:04X}"
    comment = status.get("ErrorComment", "")
    return False, f"status 0x{code:04X}" + (f": {comment}" if comment else "")


def _store_many(
    items: Sequence[tuple[str, str, Callable[[], Dataset]]],
    to: AeAddress,
    calling_ae: str,
    timeout: float,
) -> list[tuple[bool, str]]:
    """C-STORE ``(sop_class, transfer_syntax, loader)`` items over one association."""
    contexts: list[tuple[str, str]] = []
    for sop_class, syntax, _ in items:
        if (sop_class, syntax) not in contexts:
            contexts.append((sop_class, syntax))
    if len(contexts) > _MAX_CONTEXTS:
        raise DicomSendError(
            f"{len(contexts)} SOP class/transfer syntax pairs to send, more than the "
            f"{_MAX_CONTEXTS} one association allows: send the files in smaller groups"
        )
    ae = _make_ae(calling_ae, timeout)
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, [syntax])
    outcomes: list[tuple[bool, str]] = []
    assoc = _associate(ae, to, allow_no_contexts=True)
    if not assoc.is_established:
        return [
            (False, f"{to} does not accept SOP class {sop_class} in {syntax}")
            for sop_class, syntax, _ in items
        ]
    try:
        for sop_class, syntax, load in items:
            if not assoc.is_established:
                outcomes.append((False, "association ended before this file was sent"))
                continue
            accepted = any(
                cx.abstract_syntax == sop_class and cx.transfer_syntax[0] == syntax
                for cx in assoc.accepted_contexts
            )
            if not accepted:
                outcomes.append(
                    (False, f"{to} does not accept SOP class {sop_class} in {syntax}")
                )
                continue
            try:
                ds = load()
            except Exception as exc:  # unreadable file: report and go on
                outcomes.append((False, f"cannot read: {exc}"))
                continue
            try:
                outcomes.append(_status_text(assoc.send_c_store(ds)))
            except (ValueError, RuntimeError, AttributeError) as exc:
                outcomes.append((False, f"cannot send: {exc}"))
    finally:
        if assoc.is_established:
            assoc.release()
    return outcomes


def _read_header(path: Path) -> tuple[str, str]:
    try:
        ds = dcmread(path, stop_before_pixels=True)
    except InvalidDicomError as exc:  # pydicom's message ends "... Use force=True ...": no
        raise ValueError("not a DICOM file (no DICOM file header)") from exc
    except OSError as exc:
        raise ValueError(f"cannot open: {exc.strerror or type(exc).__name__}") from exc
    except (ValueError, EOFError) as exc:
        raise ValueError("not a readable DICOM file (truncated or corrupt header)") from exc
    sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    if not sop_class:
        raise ValueError("the file has no SOP Class UID")
    syntax = ds.file_meta.get("TransferSyntaxUID") or ImplicitVRLittleEndian
    return str(sop_class), str(syntax)


def send_files(
    paths: Iterable[str | Path],
    to: AeAddress | str,
    *,
    calling_ae: str = DEFAULT_CALLING_AE,
    timeout: float = 30.0,
) -> SendReport:
    """Send DICOM files to a peer with C-STORE over one association.

    Presentation contexts are requested from the files' own SOP classes and transfer
    syntaxes. Files that cannot be read or that the peer refuses are listed in the
    report's ``failed``; the others are still sent.

    Args:
        paths: DICOM files.
        to: the peer, as :class:`AeAddress` or ``"AE@host:port"``.
        calling_ae: our AE title.
        timeout: seconds for connecting and for each response.

    Returns:
        A :class:`SendReport`.

    Raises:
        ConfigError: ``to`` cannot be parsed.
        DicomSendError: the peer cannot be reached or rejects the association.

    Example:
        >>> report = send_files(["a.dcm"], "ORTHANC@localhost:4242")  # doctest: +SKIP
        >>> report.ok  # doctest: +SKIP
        True
    """
    address = parse_ae_address(to)
    report = SendReport()
    items: list[tuple[str, str, Callable[[], Dataset]]] = []
    item_paths: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:
            sop_class, syntax = _read_header(path)
        except ValueError as exc:
            report.failed.append((path, str(exc)))
            continue
        items.append((sop_class, syntax, lambda p=path: dcmread(p)))  # type: ignore[misc]
        item_paths.append(path)
    if items:
        for path, (ok, reason) in zip(
            item_paths, _store_many(items, address, calling_ae, timeout), strict=True
        ):
            if ok:
                report.sent.append(path)
            else:
                report.failed.append((path, reason))
    # the caller reports the outcome (once); here only for debugging
    for path, reason in report.failed:
        logger.debug("not sent to %s: %s: %s", address, path, reason)
    logger.debug("sent %d file(s) to %s, %d failed", len(report.sent), address,
                 len(report.failed))
    return report


def send_dataset(
    ds: Dataset,
    to: AeAddress | str,
    *,
    calling_ae: str = DEFAULT_CALLING_AE,
    timeout: float = 30.0,
) -> None:
    """Send one dataset (e.g. a DICOM SR result) to a peer with C-STORE.

    Raises:
        ConfigError: ``to`` cannot be parsed.
        DicomSendError: the peer cannot be reached, rejects the association or does not
            store the dataset.
    """
    address = parse_ae_address(to)
    sop_class = ds.get("SOPClassUID")
    if not sop_class:
        raise DicomSendError("the dataset has no SOP Class UID: cannot choose a context")
    meta: Any = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not syntax:
        raise DicomSendError(
            "the dataset has no file_meta.TransferSyntaxUID: set it (e.g. to "
            "pydicom.uid.ExplicitVRLittleEndian) so its encoding is known"
        )
    [(ok, reason)] = _store_many(
        [(str(sop_class), str(syntax), lambda: ds)], address, calling_ae, timeout
    )
    if not ok:
        raise DicomSendError(
            f"{address} did not store {ds.get('SOPInstanceUID', 'the dataset')}: {reason}"
        )


def echo(
    to: AeAddress | str, *, calling_ae: str = DEFAULT_CALLING_AE, timeout: float = 10.0
) -> bool:
    """C-ECHO a peer; True when it answers with success, False when it cannot be reached.

    Raises:
        ConfigError: ``to`` cannot be parsed.
    """
    address = parse_ae_address(to)
    ae = _make_ae(calling_ae, timeout)
    ae.add_requested_context(_VERIFICATION)
    try:
        assoc = _associate(ae, address)
    except DicomSendError as exc:
        logger.warning("C-ECHO %s: %s", address, exc)
        return False
    try:
        status = assoc.send_c_echo()
        return "Status" in status and int(status.Status) == 0x0000
    finally:
        if assoc.is_established:
            assoc.release()
