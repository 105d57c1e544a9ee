"""``radiolens model-card``: print a model's card (Markdown)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "model-card", help="print the model card of a run directory or builtin model",
        description="Print a model card: intended use and misuse, training data, "
                    "preprocessing, validation metrics with 95% CIs, thresholds, "
                    "calibration, subgroups and known failure modes.")
    p.add_argument("model", metavar="RUN_DIR|builtin:NAME")
    p.add_argument("-o", "--output", metavar="CARD.md", help="write to a file instead")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.models.card import render_model_card

    name = args.model.split(":", 1)[1] if args.model.startswith("builtin:") else None
    text = render_model_card(args.model, name=name)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0
