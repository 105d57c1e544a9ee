"""The one atomic write: the whole new file or the old one, never a partial one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from radiolens._fs import write_atomic, write_new


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


def _recording_fsync(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record what os.fsync is called on: a folder's path, or "file"."""
    synced: list[str] = []
    real_open, real_fsync, real_close = os.open, os.fsync, os.close
    names: dict[int, str] = {}

    def opened(path: str, flags: int, *args: object) -> int:
        fd = real_open(path, flags, *args)
        if os.path.isdir(path):
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
    return synced


def test_new_folders_are_fsynced_in_their_parents(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _recording_fsync(monkeypatch)
    write_atomic(tmp_path / "study" / "series" / "x.dcm", b"data")
    # the two new folders' entries (in tmp_path, then in study), the file, its folder
    assert synced == [str(tmp_path), str(tmp_path / "study"), "file",
                      str(tmp_path / "study" / "series")]
    synced.clear()
    write_atomic(tmp_path / "study" / "series" / "y.dcm", b"data")
    assert synced == ["file", str(tmp_path / "study" / "series")]  # no folder was new


def test_write_new_puts_the_whole_file_in_place_and_syncs_it_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _recording_fsync(monkeypatch)
    dest = tmp_path / "study" / "x.dcm"
    pending = write_new(dest, b"data" * 1000)
    assert dest.read_bytes() == b"data" * 1000  # readers see it whole at once
    assert [p.name for p in dest.parent.iterdir()] == ["x.dcm"]  # no temporary file
    assert synced == []  # nothing is durable yet
    pending.sync()
    # the file, the folder holding its name, then the new folder's entry in its parent
    assert synced == ["file", str(tmp_path / "study"), str(tmp_path)]
    with pytest.raises(RuntimeError, match="already synced"):
        pending.sync()
    synced.clear()
    write_new(tmp_path / "study" / "y.dcm", b"data").sync()
    assert synced == ["file", str(tmp_path / "study")]  # no folder was new


def test_write_new_leaves_nothing_when_it_fails_and_discard_removes_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pending = write_new(tmp_path / "kept.dcm", b"data")
    pending.discard()
    assert not (tmp_path / "kept.dcm").exists()
    pending.discard()  # twice is harmless

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        write_new(tmp_path / "x.dcm", b"data")
    assert list(tmp_path.iterdir()) == []
