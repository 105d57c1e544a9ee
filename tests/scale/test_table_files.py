"""The results table on disk: hashing, the partial file, resuming from an interrupted or
foreign file, Parquet."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from radiolens.archive import (
    FileScore,
    ResultWriter,
    file_sha256,
    format_row,
    partial_path,
    read_previous,
    result_columns,
)
from radiolens.errors import ConfigError

COLUMNS = result_columns(["pneumonia"])
SHA = "a" * 64


def rows(n: int, start: int = 0) -> list[list[str]]:
    return [format_row(FileScore(f"img{i}.png", f"{i:064x}", (i / 100,), (i % 2 == 1,)), 1)
            for i in range(start, start + n)]


def test_file_sha256_streams_the_same_digest(tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    data = bytes(range(256)) * 9000
    f.write_bytes(data)
    assert file_sha256(f, block_size=4096) == hashlib.sha256(data).hexdigest()


def test_columns_keep_the_predict_layout_and_add_the_hash() -> None:
    assert COLUMNS == ["path", "pneumonia_prob", "pneumonia_call", "error", "sha256"]
    assert format_row(FileScore("a.png", SHA, (0.25,), (False,)), 1) == [
        "a.png", "0.250000", "0", "", SHA]
    failed = format_row(FileScore("b.png", "", error="b.png: bad\nfile"), 1)
    assert failed == ["b.png", "", "", "b.png: bad file", ""]  # one line per row


def test_output_appears_only_when_the_run_finishes(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    with ResultWriter(out, COLUMNS) as w:
        w.write(rows(3))
        assert partial_path(out).is_file() and not out.exists()
    assert not partial_path(out).exists()
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert read_previous(out, COLUMNS).rows == 3


def test_an_interrupted_run_keeps_its_rows_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    with pytest.raises(KeyboardInterrupt), ResultWriter(out, COLUMNS) as w:
        w.write(rows(2))
        raise KeyboardInterrupt
    assert not out.exists() and read_previous(partial_path(out), COLUMNS).rows == 2
    with ResultWriter(out, COLUMNS, resume=True) as w:
        assert set(w.previous.done) == {"img0.png", "img1.png"}
        w.write(rows(2, start=2))
    assert [r[0] for r in map(lambda s: s.split(","), out.read_text().splitlines()[1:])] == [
        "img0.png", "img1.png", "img2.png", "img3.png"]


@pytest.mark.parametrize("tail", [b"img9.png,0.12", b"img9.png,0.1\x00\x00\x00\x00",
                                  b'"img9.png,0.12', b"\x00" * 40])
def test_a_cut_last_line_is_dropped_and_overwritten(tmp_path: Path, tail: bytes) -> None:
    out = tmp_path / "scores.csv"
    with ResultWriter(out, COLUMNS) as w:
        w.write(rows(3))
    partial_path(out).write_bytes(out.read_bytes() + tail)  # as a crash leaves it
    out.unlink()
    prev = read_previous(partial_path(out), COLUMNS)
    assert prev.rows == 3 and prev.dropped == 1 and "img9.png" not in prev.paths
    with ResultWriter(out, COLUMNS, resume=True) as w:
        w.write(rows(1, start=9))
    text = out.read_text()
    assert text.count("\n") == 5 and "\x00" not in text
    assert read_previous(out, COLUMNS).rows == 4


def test_a_rescored_file_replaces_its_row(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    with ResultWriter(out, COLUMNS) as w:
        w.write(rows(3))
    with ResultWriter(out, COLUMNS, resume=True) as w:
        w.write([format_row(FileScore("img1.png", SHA, (0.9,), (True,)), 1)])
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and lines[2] == f"img1.png,0.900000,1,,{SHA}"


def test_failed_files_are_not_counted_as_done(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    with ResultWriter(out, COLUMNS) as w:
        w.write([format_row(FileScore("bad.png", SHA, error="unreadable"), 1), *rows(1)])
    prev = read_previous(out, COLUMNS)
    assert prev.known_hash("bad.png") == "" and prev.known_hash("img0.png") == f"{0:064x}"


@pytest.mark.parametrize("header, words", [
    ("id,Atelectasis,Cardiomegaly", "not a radiolens predict table"),
    ("path,pneumonia_prob,pneumonia_call,error", "no sha256 column"),
    ("path,Mass_prob,Mass_call,error,sha256", "other labels (Mass; this model has pneumonia)"),
])
def test_resume_refuses_a_table_it_did_not_write(tmp_path: Path, header: str,
                                                  words: str) -> None:
    out = tmp_path / "scores.csv"
    out.write_text(header + "\nx,1,2\n")
    with pytest.raises(ConfigError, match="drop --resume") as err:
        ResultWriter(out, COLUMNS, resume=True).__enter__()
    assert words in str(err.value)
    assert out.read_text().startswith(header)  # left as it was


def test_parquet_output_and_resume(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "scores.parquet"
    with ResultWriter(out, COLUMNS) as w:
        w.write([*rows(2), format_row(FileScore("bad.png", "", error="unreadable"), 1)])
    table = pq.read_table(out)
    assert table.column_names == COLUMNS and table.num_rows == 3
    assert table.column("pneumonia_prob").to_pylist() == [0.0, 0.01, None]
    assert table.column("pneumonia_call").to_pylist() == [0, 1, None]
    with ResultWriter(out, COLUMNS, resume=True) as w:
        assert set(w.previous.done) == {"img0.png", "img1.png"}
        w.write(rows(1, start=5))
    assert pq.read_table(out).column("path").to_pylist() == [
        "img0.png", "img1.png", "bad.png", "img5.png"]
