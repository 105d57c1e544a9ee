"""``radiolens thresholds``: choose a model's operating thresholds on validation data."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from radiolens.cli._common import add_scoring_options, percent, run_destination

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "thresholds", help="choose operating thresholds on validation data, into model.json",
        description="Score a labelled validation split with a model, choose each label's "
                    "operating threshold there (never on test data), and write the thresholds "
                    "and the validation metrics at them into model.json. Use it after "
                    "import-weights (whose thresholds are 0.5), or to move an operating point. "
                    "The weights are not changed.")
    add_scoring_options(p, checkpoint_help="run directory, or builtin:NAME (then -o is needed)",
                        split_help="rows of this split (default: val); 'all' for every row")
    p.add_argument("--method", default="youden", metavar="M",
                   help="youden (default), f1, sensitivity:0.95, specificity:0.9, fixed:0.5")
    p.add_argument("-o", "--output", metavar="NEW_RUN_DIR",
                   help="write a new run directory (weights copied) instead of updating "
                        "RUN_DIR in place")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.cli._scoring import score_from_args, subgroup_metadata
    from radiolens.evaluate import (
        EvaluationError,
        check_threshold_method,
        choose_threshold,
        evaluate_predictions,
    )
    from radiolens.models import write_model_info
    from radiolens.models.info import WEIGHTS_FILE

    check_threshold_method(args.method)  # a typo fails before minutes of scoring
    source, dest = run_destination(args.checkpoint, args.output, "the new thresholds")
    predictor, scored = score_from_args(args, default_split="val")
    info = predictor.info_
    thresholds = dict(predictor.thresholds)
    for j, name in enumerate(predictor.labels):
        try:
            thresholds[name] = choose_threshold(scored.y[:, j], scored.p[:, j], args.method)
        except EvaluationError as exc:
            log.warning("%s: threshold kept at %.3f (%s)", name, thresholds[name], exc)
    validation = evaluate_predictions(scored.y, scored.p, predictor.labels, thresholds,
                                      subgroup_metadata(scored.items), n_boot=args.n_boot,
                                      case_ids=[it["id"] for it in scored.items],
                                      split=scored.split)
    validation["settings"]["thresholds_chosen_on"] = (
        f"split {scored.split!r} of {Path(args.data).name} by radiolens thresholds")
    new_info = info.model_copy(update={
        "thresholds": thresholds,
        "threshold_method": f"{args.method} on validation data: split {scored.split!r} of "
                            f"{Path(args.data).name} ({len(scored.items)} images)",
        "validation": validation})
    if args.output:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / WEIGHTS_FILE, dest / WEIGHTS_FILE)
        for extra in ("card.yaml", "MODEL_CARD.md"):
            if (source / extra).is_file():
                log.warning("%s not copied: it describes the old operating point", extra)
    elif (dest / "model.onnx").is_file():
        log.warning("%s/model.onnx still holds the old thresholds in its metadata; "
                    "radiolens uses model.json, other ONNX tools may not", dest)
    write_model_info(dest, new_info)
    print(f"{len(scored.items)} images of split {scored.split!r} scored; wrote {dest}/model.json")
    for name in predictor.labels:
        rec = validation["labels"][name]
        old = info.thresholds.get(name)
        print(f"  {name}: threshold {'none' if old is None else f'{old:.3f}'} -> "
              f"{thresholds[name]:.3f}; sensitivity {percent(rec.get('sensitivity'))}, "
              f"specificity {percent(rec.get('specificity'))}, "
              f"AUROC {_num(rec.get('auroc'))}")
    print("these figures are on the data the thresholds were chosen on: judge the model on "
          "a separate test split with `radiolens evaluate`", file=sys.stderr)
    return 1 if scored.unreadable else 0



def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
