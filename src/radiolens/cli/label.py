"""``radiolens label``: mine finding labels from free-text reports."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from radiolens.cli._common import add_scale_options, comma_list, progress

if TYPE_CHECKING:
    from radiolens.reports.batch import LabelOutcome

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  radiolens label reports.jsonl -o labels.csv
  radiolens label reports.csv -o labels.csv --text-fields report --id-field accession
  radiolens label reports/ -o labels.csv --evidence evidence.jsonl   (a folder of .txt)
  radiolens label NLMCXR_reports.tgz -o openi.csv --workers 2       (OpenI XML)
  radiolens label notes.csv -o labels.csv --schema chexpert --rules my_rules.yaml
  radiolens label reports.jsonl -o labels.csv --ray                (Ray Data, local)
  radiolens label reports.jsonl -o labels.csv --ray head:6379      (a Ray cluster)

values: 1 positive, 0 negative, -1 uncertain, blank not mentioned.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "label", help="mine finding labels (with negation and uncertainty) from reports",
        description="Label free-text radiology reports: one column per finding, with "
                    "negation and uncertainty, and the evidence for every label.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="CSV, JSONL, a folder of .txt files, or OpenI XML "
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
    add_scale_options(p, verb="label", workers_help="processes to use (default: 1); with "
                      "--ray, labeller actors (default: one per CPU of the cluster)")
    p.add_argument("--on-error", choices=["raise", "skip"], default="raise",
                   help="on a bad record: stop (default) or report it and go on")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.errors import ConfigError
    from radiolens.reports import ReportLabeler
    from radiolens.reports.readers import read_reports

    inputs = [*getattr(args, "ray_paths", []), *([args.input] if args.input else [])]
    if len(inputs) != 1:
        raise ConfigError("give one input (a CSV, JSONL, folder of .txt or OpenI XML)"
                          if not inputs else f"give one input, not {len(inputs)}: "
                          + ", ".join(inputs))
    labeler = ReportLabeler(args.schema, args.rules, args.sections).load()
    records = read_reports(inputs[0], args.format, args.text_fields, args.id_field)
    if args.ray is not None:
        from radiolens.archive.ray_labels import label_records_ray
        from radiolens.archive.ray_runtime import ray_session

        local = None if args.workers is None else max(args.workers, os.cpu_count() or 1)
        with ray_session(args.ray, num_cpus=local):
            return _write(args, label_records_ray(records, labeler, workers=args.workers),
                          labeler.columns)
    from radiolens.reports.batch import label_records

    wanted = args.workers or 1
    workers = min(wanted, os.cpu_count() or 1) if wanted > 1 else 1
    if workers < wanted:
        log.info("using %d workers: this machine has %d cores", workers, workers)
    return _write(args, label_records(records, labeler, workers=workers), labeler.columns)


def _write(args: argparse.Namespace, outcomes: Iterable[LabelOutcome],
           columns: Sequence[str]) -> int:
    from radiolens.errors import ReportParseError
    from radiolens.reports.writers import AtomicWriter, EvidenceWriter, LabelTableWriter

    started = time.perf_counter()
    labelled = skipped = 0
    with contextlib.ExitStack() as stack:
        table = LabelTableWriter(stack.enter_context(AtomicWriter(args.output)), columns)
        evidence = (EvidenceWriter(stack.enter_context(AtomicWriter(args.evidence)))
                    if args.evidence else None)
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
