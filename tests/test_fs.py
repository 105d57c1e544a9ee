"""The one atomic write: the whole new file or the old one, never a partial one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from radiolens._fs import write_atomic


def test_write_creates_folders_and_replaces(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "out.bin"
    assert write_atomic(dest, b"one") == dest
    write_atomic(dest, b"two")
    assert dest.read_bytes() == b"two"
    assert [p.name for p in dest.parent.iterdir()] == ["out.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "out.bin"
    write_atomic(dest, b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        write_atomic(dest, b"new")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_the_data_is_fsynced_before_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(a: str, b: str) -> None:
        calls.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_atomic(tmp_path / "x", b"data")
    assert calls[:2] == ["fsync", "replace"] and calls[2:] == ["fsync"]  # then the folder


def test_new_folders_are_fsynced_in_their_parents(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_open, real_fsync, real_close = os.open, os.fsync, os.close
    names: dict[int, str] = {}  # folders opened with os.open, by descriptor

    def opened(path: str, flags: int, *args: object) -> int:
        fd = real_open(path, flags, *args)
        names[fd] = str(path)
        return fd

    def fsync(fd: int) -> None:
        synced.append(names.get(fd, "file"))
        real_fsync(fd)

    def closed(fd: int) -> None:
        names.pop(fd, None)
        real_close(fd)

    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "close", closed)
    write_atomic(tmp_path / "study" / "series" / "x.dcm", b"data")
    # the two new folders' entries (in tmp_path, then in study), the file, its folder
    assert synced == [str(tmp_path), str(tmp_path / "study"), "file",
                      str(tmp_path / "study" / "series")]
    synced.clear()
    write_atomic(tmp_path / "study" / "series" / "y.dcm", b"data")
    assert synced == ["file", str(tmp_path / "study" / "series")]  # no folder was new
