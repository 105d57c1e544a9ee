"""``radiolens predict``: probabilities and calls for image files."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from radiolens.cli._common import add_scale_options, positive_int

if TYPE_CHECKING:
    from radiolens.archive import FileScore, PredictorSpec
    from radiolens.archive.run import Scorer

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  radiolens predict scans/ -o scores.csv
  radiolens predict /archive/ -o scores.csv --workers 2           (2 processes)
  radiolens predict /archive/ -o scores.parquet --ray             (a local Ray instance)
  radiolens predict /archive/ -o scores.csv --ray head:6379 --resume   (a Ray cluster)

-o OUT.csv / OUT.parquet is written as the files are scored (to OUT.partial until the run
ends), with each file's sha256; --resume skips the files already in OUT with the same path
and content, so an interrupted run goes on where it stopped.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict", help="score DICOM/PNG/JPEG files with a model (CSV, Parquet or JSON out)",
        description="Score image files (or folders of them) and write, per file, the "
                    "probability and the thresholded call of every label. AI output to "
                    "assist a radiologist, never to replace one.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders")
    p.add_argument("--checkpoint", default="builtin:pneumonia-kermany", metavar="RUN_DIR",
                   help="run directory or builtin:NAME (default builtin:pneumonia-kermany)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (default: stdout)")
    p.add_argument("--format", choices=["csv", "json", "parquet"], default=None,
                   help="default: from the output suffix, else csv")
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="N")
    p.add_argument("--backend", choices=["auto", "torch", "onnx", "openvino"], default="auto",
                   help="auto (default): OpenVINO when installed, else ONNX Runtime, else "
                        "PyTorch; the same calls, faster on a CPU")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="OpenVINO/PyTorch precision (auto: the backend's choice for this CPU)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="CPU threads (default 2 for ONNX Runtime and OpenVINO; 1 per worker "
                        "with --workers or --ray)")
    p.add_argument("--device", default="cpu")
    add_scale_options(p, verb="score", workers_help="score in N processes on this "
                      "machine; with --ray, the number of Ray actors (default: one per CPU "
                      "of the cluster)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows already in OUT (or in OUT.partial, left by an "
                        "interrupted run) and skip their files when unchanged (same path "
                        "and sha256); without it an existing OUT is replaced")
    p.set_defaults(run=run)


def _format(args: argparse.Namespace) -> str:
    from radiolens.errors import ConfigError

    suffix = Path(args.output).suffix.lower() if args.output else ""
    guessed = {".json": "json", ".parquet": "parquet"}.get(suffix, "csv")
    fmt: str = args.format or guessed
    if fmt == "parquet" and suffix != ".parquet":
        raise ConfigError("Parquet output needs a file name ending in .parquet: "
                          "-o OUT.parquet")
    if args.output and suffix == ".parquet" and fmt != "parquet":
        raise ConfigError(f"{args.output} ends in .parquet but --format is {fmt}; "
                          "rename the output or drop --format")
    if args.resume and (not args.output or fmt == "json"):
        raise ConfigError("--resume continues a results table: give -o OUT.csv or "
                          "-o OUT.parquet")
    return fmt


def run(args: argparse.Namespace) -> int:
    from radiolens.archive import PredictorSpec
    from radiolens.cli._common import image_files
    from radiolens.errors import ConfigError

    paths = [*getattr(args, "ray_paths", []), *args.paths]
    if not paths:
        raise ConfigError("give at least one image file or folder to score")
    fmt = _format(args)
    files = image_files(paths)
    parallel = args.ray is not None or args.workers is not None
    if parallel and str(args.device).startswith("cuda"):
        raise ConfigError("--workers and --ray score on CPUs; use --device cuda without them")
    spec = PredictorSpec(str(args.checkpoint), backend=args.backend,
                         threads=args.threads or (1 if parallel else None),
                         batch_size=args.batch_size, precision=args.precision,
                         device=args.device)
    if args.ray is not None:
        from radiolens.archive.ray_runtime import ray_session
        from radiolens.archive.ray_scoring import RayScorer

        labels, thresholds = _model_header(spec)
        cpus = None if args.workers is None else max(args.workers * (spec.threads or 1),
                                                     os.cpu_count() or 1)
        with ray_session(args.ray, num_cpus=cpus):  # cpus: for a local instance
            scorer = RayScorer(spec, args.workers, batch_size=2 * args.batch_size,
                               hashing=fmt != "json" and bool(args.output))
            code = _score(args, fmt, files, scorer, labels, thresholds)
        if len(scorer.nodes_) > 1:
            log.info("scored on %d Ray nodes: %s", len(scorer.nodes_),
                     ", ".join(f"{n[:8]} {c}" for n, c in scorer.nodes_.most_common()))
        return code
    if args.workers is not None:
        from radiolens.archive import PoolScorer

        labels, thresholds = _model_header(spec)
        pool = PoolScorer(spec, args.workers, chunk_size=2 * args.batch_size,
                          hashing=fmt != "json" and bool(args.output))
        return _score(args, fmt, files, pool, labels, thresholds)
    from radiolens.archive import LocalScorer

    predictor = spec.load()
    local = LocalScorer(predictor, chunk_size=2 * args.batch_size,
                        hashing=fmt != "json" and bool(args.output))
    return _score(args, fmt, files, local, predictor.labels, predictor.thresholds)


def _model_header(spec: PredictorSpec) -> tuple[list[str], dict[str, float]]:
    """The model's labels and thresholds, from one load here before any worker starts: a
    bad checkpoint or setting fails at once with its message, and a missing ONNX export
    is made once rather than by every worker."""
    predictor = spec.load()
    return predictor.labels, predictor.thresholds


def _score(args: argparse.Namespace, fmt: str, files: list[str], scorer: Scorer,
           labels: list[str], thresholds: dict[str, float]) -> int:
    from radiolens.archive import score_files
    from radiolens.cli._common import progress, progress_counter

    if args.output and fmt != "json":
        with progress_counter("scoring", "img", total=len(files)) as update:
            summary = score_files(files, scorer, args.output, labels, resume=args.resume,
                                  on_progress=update)
        for error in summary.failures:
            log.warning("not scored: %s", error)
        if summary.failed > len(summary.failures):
            log.warning("... and %d more; see the error column of %s",
                        summary.failed - len(summary.failures), args.output)
        done = summary.scored + summary.failed
        rate = done / summary.seconds if summary.seconds > 0 else 0.0
        log.info("%d of %d files scored%s in %.1f s (%.1f files/s); wrote %s",
                 summary.scored, done,
                 f", {summary.skipped} skipped (scored before, unchanged)"
                 if args.resume else "", summary.seconds, rate, args.output)
        return 1 if summary.failed else 0

    def scores() -> Iterator[FileScore]:
        for chunk in scorer.score([(f, "") for f in files]):
            yield from chunk.scores

    results = list(progress(scores(), "scoring", "img", total=len(files)))
    out: TextIO = (open(args.output, "w", newline="", encoding="utf-8")  # noqa: SIM115
                   if args.output else sys.stdout)
    try:
        if fmt == "csv":
            _write_csv(out, results, labels)
        else:
            _write_json(out, results, labels, thresholds, str(args.checkpoint))
    finally:
        if out is not sys.stdout:
            out.close()
    failed = [r for r in results if r.probabilities is None]
    for r in failed:
        log.warning("not scored: %s", r.error)
    log.info("%d of %d files scored%s", len(results) - len(failed), len(results),
             f"; wrote {args.output}" if args.output else "")
    return 1 if failed else 0


def _write_csv(out: TextIO, results: list[FileScore], labels: list[str]) -> None:
    from radiolens.archive import format_row, result_columns

    w = csv.writer(out)
    w.writerow(result_columns(labels, with_hash=False))
    for r in results:
        w.writerow(format_row(r, len(labels), with_hash=False))


def _write_json(out: TextIO, results: list[FileScore], labels: list[str],
                thresholds: dict[str, float], model: str) -> None:
    from radiolens import DISCLAIMER

    doc = {"model": model, "labels": labels, "thresholds": thresholds,
           "disclaimer": DISCLAIMER,
           "predictions": [
               {"path": r.path, "error": r.error} if r.probabilities is None or r.calls is None
               else {"path": r.path,
                     "probabilities": dict(zip(labels, r.probabilities, strict=True)),
                     "calls": dict(zip(labels, r.calls, strict=True))}
               for r in results]}
    json.dump(doc, out, indent=2)
    out.write("\n")
