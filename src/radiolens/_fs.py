"""Write files so that readers never see half of one: the one atomic write of radiolens.

Every file the service writes (received DICOM, SR, Secondary Capture, PNG heatmaps, JSON
and HL7 outputs) goes through :func:`write_atomic`: the bytes go to a uniquely named
temporary file in the destination's folder, are flushed and fsynced, the file is renamed
over the destination with :func:`os.replace`, and the folder is fsynced so the rename
itself survives a crash. A reader sees the old file or the new one, never a mix.

:func:`write_new` is the receiver's variant for a file that does not exist yet: the
file is renamed into place at once (complete, so readers may open it) and made durable
later by :meth:`PendingFile.sync`, so that the fsyncs can overlap other work (the
worklist's commit); whoever acknowledges the file waits for ``sync`` first.

This module is a leaf: it imports nothing from radiolens.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["PendingFile", "write_atomic", "write_new"]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms (Windows) cannot open a folder
        return
    try:
        with contextlib.suppress(OSError):  # and some file systems refuse to fsync one
            os.fsync(fd)
    finally:
        os.close(fd)


def _create_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the folders whose entries must
    be fsynced (the parents of the new folders, outermost first) for them to last."""
    if folder.is_dir():
        return []
    missing = []
    probe = folder
    while not probe.is_dir() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return [created.parent for created in reversed(missing)]


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents durably: each new folder's entry is
    fsynced in its parent, so a file written into it survives a crash with its path."""
    for parent in _create_folders(folder):
        _fsync_dir(parent)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably; create missing parent folders
    (durably too).

    Args:
        path: the destination file (replaced if it exists).
        data: the whole content.

    Returns:
        The destination path.

    Raises:
        OSError: the file cannot be written (nothing is left behind: the temporary file
            is removed).

    Example:
        >>> write_atomic(tmp / "draft.txt", b"No acute findings.")  # doctest: +SKIP
    """
    dest = Path(path)
    _make_folders(dest.parent)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(dest.parent)
    return dest


class PendingFile:
    """A new file in place and complete, not yet durable: call :meth:`sync` (or
    :meth:`discard`) exactly once.

    Attributes:
        path: the file.
    """

    def __init__(self, path: Path, fd: int, folders: list[Path]) -> None:
        self.path = path
        self._fd: int | None = fd
        self._folders = folders

    def sync(self) -> None:
        """Make the file, its name and any folder created for it durable.

        Raises:
            OSError: the disk refused (the file's content is then unknown: discard it).
        """
        fd, self._fd = self._fd, None
        if fd is None:
            raise RuntimeError(f"{self.path} was already synced or discarded")
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.path.parent)
        for folder in self._folders:
            _fsync_dir(folder)

    def discard(self) -> None:
        """Remove the file (unsynced or not); never raises."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            self.path.unlink()


def write_new(path: str | os.PathLike[str], data: bytes) -> PendingFile:
    """Write ``data`` to a new file at ``path``, complete before it appears there, and
    leave the fsyncs to :meth:`PendingFile.sync` (creating missing parent folders).

    Readers never see part of the file. Until ``sync`` returns, a crash may lose it
    (or its folder): acknowledge it to nobody before then. Made for a file that does
    not exist yet; one that does is replaced (use :func:`write_atomic` to replace a
    file that must survive a crash).

    Args:
        path: the destination file.
        data: the whole content.

    Returns:
        The :class:`PendingFile` to sync.

    Raises:
        OSError: the file cannot be written (nothing is left behind).

    Example:
        >>> pending = write_new(tmp / "1.2.3.dcm", encoded)  # doctest: +SKIP
        >>> pending.sync()  # doctest: +SKIP
    """
    dest = Path(path)
    folders = _create_folders(dest.parent)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.replace(tmp, dest)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return PendingFile(dest, fd, folders)
