"""``radiolens label``: mine finding labels from free-text reports."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from typing import Any

from radiolens.cli._common import comma_list, positive_int, progress

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  radiolens label reports.jsonl -o labels.csv
  radiolens label reports.csv -o labels.csv --text-fields report --id-field accession
  radiolens label reports/ -o labels.csv --evidence evidence.jsonl   (a folder of .txt)
  radiolens label NLMCXR_reports.tgz -o openi.csv --workers 2       (OpenI XML)
  radiolens label notes.csv -o labels.csv --schema chexpert --rules my_rules.yaml

values: 1 positive, 0 negative, -1 uncertain, blank not mentioned.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "label", help="mine finding labels (with negation and uncertainty) from reports",
        description="Label free-text radiology reports: one column per finding, with "
                    "negation and uncertainty, and the evidence for every label.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="CSV, JSONL, a folder of .txt files, or OpenI XML "
                                 "(a folder of .xml or a .tgz)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.csv", help="label table to write")
    p.add_argument("--schema", default="chestxray14", choices=["chestxray14", "chexpert"],
                   help="label columns: the 14 ChestX-ray14 findings (default) or the CheXpert "
                        "observations")
    p.add_argument("--format", default="auto", choices=["auto", "csv", "jsonl", "txt", "openi"],
                   help="input format (default: from the file name)")
    p.add_argument("--text-fields", type=comma_list, metavar="F,F",
                   help="fields holding the report text (default: findings,impression when "
                        "present, else report or text)")
    p.add_argument("--id-field", default="id", metavar="F", help="field holding the report id "
                                                               "(default: id)")
    p.add_argument("--sections", type=comma_list, metavar="S,S",
                   default=["findings", "impression"],
                   help="report sections to label (default: findings,impression; indication "
                        "and history are never labelled unless named here)")
    p.add_argument("--rules", action="append", default=[], metavar="FILE",
                   help="extra rules (YAML) adding findings, synonyms or triggers; repeatable")
    p.add_argument("--evidence", metavar="OUT.jsonl",
                   help="also write, per report and finding, the sentence, phrase and rule")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="processes to use (default: 1)")
    p.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                   help="on a bad record: stop (default) or report it and go on")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.errors import ReportParseError
    from radiolens.reports import ReportLabeler
    from radiolens.reports.batch import label_records
    from radiolens.reports.readers import read_reports
    from radiolens.reports.writers import AtomicWriter, EvidenceWriter, LabelTableWriter

    labeler = ReportLabeler(args.schema, args.rules, args.sections).load()
    records = read_reports(args.input, args.format, args.text_fields, args.id_field)
    workers = min(args.workers, os.cpu_count() or 1) if args.workers > 1 else 1
    if workers < args.workers:
        log.info("using %d workers: this machine has %d cores", workers, workers)
    started = time.perf_counter()
    labelled = skipped = 0
    with contextlib.ExitStack() as stack:
        table = LabelTableWriter(stack.enter_context(AtomicWriter(args.output)), labeler.columns)
        evidence = (EvidenceWriter(stack.enter_context(AtomicWriter(args.evidence)))
                    if args.evidence else None)
        outcomes = label_records(records, labeler, workers=workers)
        for outcome in progress(outcomes, "labelling", "report"):
            if outcome.result is None:
                message = f"{outcome.record.source}: {outcome.error}"
                if args.on_error == "raise":
                    raise ReportParseError(f"{message} (use --on-error skip to skip such "
                                           "records)")
                log.warning("skipped %s", message)
                skipped += 1
                continue
            table.write(outcome.result, outcome.record.id)
            if evidence is not None:
                evidence.write(outcome.result, outcome.record.id, outcome.record.source)
            labelled += 1
    elapsed = time.perf_counter() - started
    rate = labelled / elapsed if elapsed > 0 else 0.0
    log.info("labelled %d reports in %.1f s (%.0f reports/s) -> %s%s", labelled, elapsed, rate,
             args.output, f" (skipped {skipped}; see the warnings above)" if skipped else "")
    if labelled == 0:
        log.warning("no report was labelled")
        return 1
    return 0
