"""Content hashes of files: how an archive run recognises a file it has already scored."""

from __future__ import annotations

import hashlib
import os

__all__ = ["file_sha256"]

_BLOCK = 1 << 20


def file_sha256(path: str | os.PathLike[str], block_size: int = _BLOCK) -> str:
    """The SHA-256 of a file's bytes as 64 hex digits, read in blocks (constant memory).

    Raises:
        OSError: the file cannot be read.

    Example:
        >>> file_sha256("chest.dcm")  # doctest: +SKIP
        '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(block_size):
            digest.update(block)
    return digest.hexdigest()
