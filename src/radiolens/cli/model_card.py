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
    text = _segmentation_card(args.model) or render_model_card(args.model, name=name)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


def _segmentation_card(ref: str) -> str | None:
    """The MODEL_CARD.md of a lung segmentation run (``train-seg`` writes it), else None."""
    import json

    from radiolens.errors import CheckpointError
    from radiolens.models import resolve_run_dir

    try:
        folder = resolve_run_dir(ref)
        data = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    except (CheckpointError, OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != "radiolens-seg-model":
        return None
    card = folder / "MODEL_CARD.md"
    if not card.is_file():
        raise CheckpointError(f"{folder} has no MODEL_CARD.md; train-seg writes one")
    return card.read_text(encoding="utf-8").rstrip("\n")
