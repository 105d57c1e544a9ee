"""``radiolens compare``: several models side by side on the same test data."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="compare evaluated models side by side",
        description="Print AUROC [95%% CI], sensitivity and specificity of several "
                    "evaluations side by side. Each argument is an OUT_DIR of `radiolens "
                    "evaluate` (or its metrics.json); a warning is printed when they were "
                    "not evaluated on the same data.")
    p.add_argument("runs", nargs="+", metavar="OUT_DIR")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.evaluate import compare_runs, read_metrics_json

    runs = []
    for raw in args.runs:
        path = Path(raw)
        name = path.parent.name if path.suffix == ".json" else path.name
        runs.append((name or raw, read_metrics_json(path)))
    print(compare_runs(runs))
    return 0
