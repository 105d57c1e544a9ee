"""``radiolens predict`` on archives: the plain path, ``--workers N``, ``--resume`` after a
finished, changed or interrupted run, and the messages for mistakes."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from radiolens.archive import LocalScorer, PredictorSpec, partial_path, score_files
from radiolens.archive.scoring import ChunkResult, Item
from radiolens.cli.main import build_parser, main
from tests.scale.conftest import read_rows, scores


def predict(model: Path, *args: str) -> int:
    return main(["-q", "predict", "--checkpoint", str(model), "--backend", "onnx", *args])


@pytest.fixture(scope="module")
def plain(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """The plain command's scores of the standard images (the reference)."""
    from tests.scale.conftest import make_images

    folder = tmp_path_factory.mktemp("plain")
    out = folder / "plain.csv"
    assert predict(tiny_model, str(make_images(folder / "images")), "-o", str(out)) == 1
    return {Path(p).name: v for p, v in scores(out).items()}


def by_name(path: Path) -> dict[str, tuple[str, str, str]]:
    return {Path(p).name: (prob, call, err.replace(str(path.parent), ""))
            for p, (prob, call, err) in scores(path).items()}


def test_plain_output_keeps_its_columns_and_adds_the_hash(tiny_model: Path, images: Path,
                                                          tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    out = tmp_path / "p.csv"
    assert predict(tiny_model, str(images), "-o", str(out)) == 1  # broken.png is listed
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "pneumonia_prob", "pneumonia_call", "error", "sha256"]
    assert len(rows) == 8 and sum(1 for r in rows if r["error"]) == 1
    assert all(len(r["sha256"]) == 64 for r in rows)
    capsys.readouterr()
    assert predict(tiny_model, str(images)) == 1  # stdout: the columns as before
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "path,pneumonia_prob,pneumonia_call,error"


def test_workers_give_the_same_scores_as_the_plain_path(tiny_model: Path, images: Path,
                                                        tmp_path: Path,
                                                        plain: dict[str, tuple]) -> None:
    out = tmp_path / "w.csv"
    assert predict(tiny_model, str(images), "-o", str(out), "--workers", "2",
                   "--batch-size", "2") == 1
    assert {k: v[:2] for k, v in by_name(out).items()} == {k: v[:2] for k, v in plain.items()}
    assert [Path(r["path"]).name for r in read_rows(out)] == sorted(plain)  # input order


def test_resume_skips_scored_files_and_rescores_a_changed_one(
        tiny_model: Path, images: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.csv"
    assert predict(tiny_model, str(images), "-o", str(out)) == 1
    first = read_rows(out)
    (images / "x03.png").write_bytes((images / "x05.png").read_bytes())  # changed content
    shutil.copy(images / "x01.png", images / "x99.png")                   # a new file
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tiny_model), "--backend", "onnx",
                 str(images), "-o", str(out), "--resume", "--workers", "2"]) == 1
    log = capsys.readouterr().err
    # scored again: the changed file, the new one and the broken one (errors are retried)
    assert "2 of 3 files scored, 6 skipped" in log
    rows = {Path(r["path"]).name: r for r in read_rows(out)}
    assert len(rows) == 9  # one row per file: the changed file's row was replaced
    old = {Path(r["path"]).name: r for r in first}
    assert rows["x03.png"]["pneumonia_prob"] == old["x05.png"]["pneumonia_prob"]
    assert rows["x03.png"]["sha256"] == old["x05.png"]["sha256"] != old["x03.png"]["sha256"]
    assert rows["x99.png"]["pneumonia_prob"] == old["x01.png"]["pneumonia_prob"]


class StopAfter:
    """A scorer that is interrupted (Ctrl-C) after ``n`` chunks."""

    def __init__(self, inner: LocalScorer, n: int) -> None:
        self.inner, self.n = inner, n

    def score(self, items: Sequence[Item]) -> Iterator[ChunkResult]:
        for i, chunk in enumerate(self.inner.score(items)):
            if i == self.n:
                raise KeyboardInterrupt
            yield chunk


def test_an_interrupted_run_resumes_where_it_stopped(tiny_model: Path, images: Path,
                                                     tmp_path: Path,
                                                     plain: dict[str, tuple]) -> None:
    files = sorted(str(p) for p in images.iterdir())
    predictor = PredictorSpec(str(tiny_model), backend="onnx").load()
    out = tmp_path / "i.csv"
    with pytest.raises(KeyboardInterrupt):
        score_files(files, StopAfter(LocalScorer(predictor, chunk_size=3), 2), out,
                    predictor.labels)
    assert not out.exists() and len(read_rows(partial_path(out))) == 6
    with partial_path(out).open("ab") as fh:  # and the crash cut a row in half
        fh.write(b"/somewhere/x06.png,0.5")
    summary = score_files(files, LocalScorer(predictor, chunk_size=3), out, predictor.labels,
                          resume=True)
    assert (summary.skipped, summary.scored, summary.failed, summary.kept) == (5, 2, 1, 6)
    assert not partial_path(out).exists()
    assert {k: v[:2] for k, v in by_name(out).items()} == {k: v[:2] for k, v in plain.items()}


def test_parquet_output(tiny_model: Path, images: Path, tmp_path: Path,
                        plain: dict[str, tuple]) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "s.parquet"
    assert predict(tiny_model, str(images), "-o", str(out), "--workers", "1") == 1
    table = pq.read_table(out).to_pylist()
    got = {Path(r["path"]).name: r for r in table}
    assert set(got) == set(plain)
    assert all(f"{r['pneumonia_prob']:.6f}" == plain[n][0] for n, r in got.items()
               if r["pneumonia_prob"] is not None)


@pytest.mark.parametrize("args, words", [
    (["--workers", "0"], "--workers: must be at least 1"),
    (["--resume"], "--resume continues a results table"),
    (["-o", "{tmp}/s.json", "--resume"], "--resume continues a results table"),
    (["-o", "{tmp}/s.csv", "--format", "parquet"], "needs a file name ending in .parquet"),
    (["--ray", "nowhere-at-all"], "not a Ray address"),
])
def test_mistakes_get_one_clear_line(tiny_model: Path, images: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str], args: list[str],
                                     words: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    try:
        code = predict(tiny_model, str(images), *args)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_resume_onto_a_foreign_table_is_refused(tiny_model: Path, images: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "labels.csv"
    out.write_text("id,Atelectasis\nr1,1\n")
    assert predict(tiny_model, str(images), "-o", str(out), "--resume") == 2
    err = capsys.readouterr().err
    assert "not a radiolens predict table" in err and err.count("\n") == 1
    assert out.read_text() == "id,Atelectasis\nr1,1\n"


def test_ray_without_ray_installed_names_the_extra(tiny_model: Path, images: Path,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")] + ["ray"]:
        monkeypatch.setitem(sys.modules, name, None)  # import ray fails, as when absent
    assert predict(tiny_model, str(images), "-o", str(tmp_path / "s.csv"), "--ray") == 2
    err = capsys.readouterr().err
    assert "pip install 'radiolens[scale]'" in err and err.count("\n") == 1


def test_a_path_after_ray_is_a_path_not_an_address(images: Path) -> None:
    args = build_parser().parse_args(["predict", "--ray", str(images), "-o", "s.csv"])
    assert args.ray == "local" and args.ray_paths == [str(images)] and args.paths == []
    args = build_parser().parse_args(["predict", str(images), "--ray", "head.example:6379"])
    assert args.ray == "head.example:6379" and args.paths == [str(images)]



def test_json_output_with_workers_matches_the_plain_command(tiny_model: Path, images: Path,
                                                            tmp_path: Path) -> None:
    import json

    docs = []
    for extra in ([], ["--workers", "2"]):
        out = tmp_path / f"s{len(extra)}.json"
        assert predict(tiny_model, str(images), "-o", str(out), *extra) == 1
        docs.append(json.loads(out.read_text()))
    assert docs[0] == docs[1]
    assert docs[0]["thresholds"] == {"pneumonia": 0.0} and len(docs[0]["predictions"]) == 8
