"""``radiolens predict``: probabilities and calls for image files."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from typing import Any, TextIO

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict", help="score DICOM/PNG/JPEG files with a model (CSV or JSON out)",
        description="Score image files (or folders of them) and write, per file, the "
                    "probability and the thresholded call of every label. AI output to "
                    "assist a radiologist, never to replace one.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--checkpoint", default="builtin:pneumonia-kermany", metavar="RUN_DIR",
                   help="run directory or builtin:NAME (default builtin:pneumonia-kermany)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (default: stdout)")
    p.add_argument("--format", choices=["csv", "json"], default=None,
                   help="default: from the output suffix, else csv")
    p.add_argument("--batch-size", type=int, default=16, metavar="N")
    p.add_argument("--backend", choices=["auto", "torch", "onnx", "openvino"], default="auto",
                   help="auto (default): OpenVINO when installed, else ONNX Runtime, else "
                        "PyTorch; the same calls, faster on a CPU")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="OpenVINO/PyTorch precision (auto: the backend's choice for this CPU)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default 2 for ONNX Runtime and OpenVINO)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens import DISCLAIMER
    from radiolens.cli._common import image_files, progress
    from radiolens.inference import Predictor

    files = image_files(args.paths)
    predictor = Predictor(args.checkpoint, device=args.device, batch_size=args.batch_size,
                          backend=args.backend, precision=args.precision,
                          threads=args.threads).load()
    fmt = args.format or ("json" if args.output and args.output.endswith(".json") else "csv")
    results = list(progress(predictor.iter_files(files), "scoring", "img", total=len(files)))
    labels = predictor.labels
    out: TextIO = (open(args.output, "w", newline="", encoding="utf-8")  # noqa: SIM115
                   if args.output else sys.stdout)
    try:
        if fmt == "csv":
            w = csv.writer(out)
            w.writerow(["path", *[f"{n}_prob" for n in labels], *[f"{n}_call" for n in labels],
                        "error"])
            for r in results:
                if r.prediction is None:
                    w.writerow([str(r.path), *[""] * (2 * len(labels)), r.error])
                else:
                    pr = r.prediction
                    w.writerow([str(r.path), *[f"{pr.probabilities[n]:.6f}" for n in labels],
                                *[int(pr.flags[n]) for n in labels], ""])
        else:
            doc = {"model": str(args.checkpoint), "labels": labels,
                   "thresholds": predictor.thresholds, "disclaimer": DISCLAIMER,
                   "predictions": [
                       {"path": str(r.path), "error": r.error} if r.prediction is None else
                       {"path": str(r.path), "probabilities": r.prediction.probabilities,
                        "calls": r.prediction.flags} for r in results]}
            json.dump(doc, out, indent=2)
            out.write("\n")
    finally:
        if out is not sys.stdout:
            out.close()
    failed = [r for r in results if r.prediction is None]
    for r in failed:
        log.warning("not scored: %s", r.error)
    log.info("%d of %d files scored%s", len(results) - len(failed), len(results),
             f"; wrote {args.output}" if args.output else "")
    return 1 if failed else 0
