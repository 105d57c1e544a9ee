"""``radiolens compare``: several models side by side on the same test data."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radiolens.evaluate import RunPredictions

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="compare evaluated models side by side, with paired tests",
        description="Print AUROC [95% CI], sensitivity and specificity of several "
                    "evaluations side by side, and DeLong's paired test of each run's AUROC "
                    "against the first run's on the cases both scored (from their "
                    "predictions.csv). Each argument is an OUT_DIR of `radiolens evaluate` "
                    "(or its metrics.json); a warning is printed when they were not "
                    "evaluated on the same data. With -o, also write compare.csv, "
                    "compare.html and overlaid ROC curves (roc_LABEL.png).")
    p.add_argument("runs", nargs="+", metavar="OUT_DIR")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="write compare.csv, compare.html and roc_LABEL.png here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.evaluate import (
        compare_runs,
        format_paired_tests,
        paired_auroc_tests,
        read_metrics_json,
        write_comparison,
    )

    runs: list[tuple[str, dict[str, Any]]] = []
    predictions: list[tuple[str, RunPredictions]] = []
    for raw in args.runs:
        path = Path(raw)
        folder = path.parent if path.suffix == ".json" else path
        name = _unique(folder.name or raw, [n for n, _ in runs])
        runs.append((name, read_metrics_json(path)))
        preds = _read_predictions(folder / "predictions.csv")
        if preds is not None:
            predictions.append((name, preds))
    print(compare_runs(runs))
    tests = paired_auroc_tests(predictions) if len(predictions) == len(runs) else []
    if len(runs) > 1:
        print()
        print(format_paired_tests(tests))
    if args.output:
        written = write_comparison(args.output, runs, tests, _curves(predictions))
        print(f"wrote {written['csv']}, {written['html']} and "
              f"{len(written) - 2} ROC plot(s)")
    return 0


def _unique(name: str, taken: list[str]) -> str:
    """``name``, or ``name (2)`` when another run already has it."""
    k, candidate = 1, name
    while candidate in taken:
        k += 1
        candidate = f"{name} ({k})"
    return candidate


def _read_predictions(path: Path) -> RunPredictions | None:
    from radiolens.evaluate import read_predictions

    if not path.is_file():
        log.warning("%s not found: no paired test or ROC overlay for this run", path)
        return None
    return read_predictions(path)


def _curves(predictions: list[tuple[str, RunPredictions]]) -> dict[str, dict[str, Any]]:
    """``{label: {run: (y, p)}}`` for the labels every run has."""
    if not predictions:
        return {}
    labels = [lab for lab in predictions[0][1].y if all(lab in p.y for _, p in predictions)]
    return {lab: {name: (p.y[lab], p.p[lab]) for name, p in predictions} for lab in labels}
