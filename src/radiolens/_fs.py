"""Write files so that readers never see half of one: the one atomic write of radiolens.

Every file the service writes (received DICOM, SR, Secondary Capture, PNG heatmaps, JSON
and HL7 outputs) goes through :func:`write_atomic`: the bytes go to a uniquely named
temporary file in the destination's folder, are flushed and fsynced, the file is renamed
over the destination with :func:`os.replace`, and the folder is fsynced so the rename
itself survives a crash. A reader sees the old file or the new one, never a mix.

This module is a leaf: it imports nothing from radiolens.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["write_atomic"]


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


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents durably: each new folder's entry is
    fsynced in its parent, so a file written into it survives a crash with its path."""
    if folder.is_dir():
        return
    missing = []
    probe = folder
    while not probe.is_dir() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        _fsync_dir(created.parent)


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
