"""``radiolens label-eval``: score a label table against a gold standard."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from radiolens.cli._common import comma_list

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "label-eval", help="precision, recall and F1 of a label table against gold labels",
        description="Score PRED (a table written by `radiolens label`) against GOLD: a CSV "
                    "in the same layout, or a JSONL whose objects hold an id and a 'labels' "
                    "object (such as the OpenI gold standard). Uncertain labels are scored "
                    "both as negative and as positive. Findings the gold never marks "
                    "positive are reported as not annotated and left out of the averages. "
                    "CheXpert names (--schema chexpert) are matched to ChestX-ray14 names "
                    "where they correspond (Pleural Effusion = Effusion).")
    p.add_argument("pred", metavar="PRED.csv")
    p.add_argument("gold", metavar="GOLD")
    p.add_argument("--id-field", default="id", metavar="F", help="id column in both files")
    p.add_argument("--findings", type=comma_list, metavar="F,F",
                   help="findings to score (default: every column both files have)")
    p.add_argument("--exclude", type=comma_list, metavar="F,F", default=[],
                   help="findings to leave out of the scores and averages")
    p.add_argument("--keep-unannotated", action="store_true",
                   help="score and average findings the gold never marks positive too")
    p.add_argument("--json", metavar="OUT.json", help="also write the scores as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens._suggest import did_you_mean
    from radiolens.errors import ConfigError
    from radiolens.reports.scoring import (
        evaluate_labels,
        format_evaluation,
        map_schema_names,
        read_label_table,
        unannotated_findings,
    )

    pred_cols, pred = read_label_table(args.pred, args.id_field)
    gold_cols, gold = read_label_table(args.gold, args.id_field)
    pred_cols, pred, renames = map_schema_names(pred_cols, pred, gold_cols)
    if renames:
        print("scored under the gold's names: " + ", ".join(
            f"{old} as {new}" for old, new in renames.items()))
    common = [c for c in gold_cols if c in pred_cols]
    findings = args.findings or common
    for f in [*findings, *args.exclude]:
        if f not in common:
            raise ConfigError(f"{f!r} is not a column of both files"
                              f"{did_you_mean(f, common)}; common columns: {', '.join(common)}")
    findings = [f for f in findings if f not in args.exclude]
    if not findings:
        raise ConfigError("no finding to score: the two files share no label column")
    only_gold = [c for c in gold_cols if c not in pred_cols]
    if only_gold:
        log.info("not scored (only in the gold): %s", ", ".join(only_gold))
    overlap = sum(1 for rid in gold if rid in pred)
    if overlap == 0:
        raise ConfigError("no report id is in both files: check --id-field")
    unannotated = [] if args.keep_unannotated else unannotated_findings(gold, findings)
    evals = [evaluate_labels(pred, gold, findings, mode, unannotated=unannotated)
             for mode in ("negative", "positive")]
    print(f"{len(gold)} gold reports, {overlap} labelled; {len(findings)} findings")
    if unannotated:
        print(f"not annotated in gold (no positive), left out of the averages: "
              f"{', '.join(unannotated)} (--keep-unannotated to include them)")
    if evals[0].missing_in_prediction:
        log.warning("%d gold reports are missing from %s and count as all-negative",
                    evals[0].missing_in_prediction, args.pred)
    print(format_evaluation(evals))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"uncertain_as_negative": evals[0].to_dict(),
                       "uncertain_as_positive": evals[1].to_dict()}, fh, indent=2)
    return 0
