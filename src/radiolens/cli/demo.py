"""``radiolens demo``: the main job on the embedded defaults."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

LABEL_WORDS = {1: "POSITIVE", 0: "negative", -1: "uncertain"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="run the triage service on example studies (the main job)",
        description="Start the triage service in a temporary data folder, send the example "
                    "studies to its DICOM port as a PACS would, wait until they are scored, "
                    "print the worklist, and keep serving (API and web UI) until Ctrl-C. "
                    "With --labeller: label the example reports instead.")
    p.add_argument("--labeller", action="store_true",
                   help="run the report-labeller demo instead")
    p.add_argument("--exit-when-done", action="store_true",
                   help="stop once the examples are scored (for scripts)")
    p.add_argument("--data-dir", metavar="DIR", help="data folder (default: a temporary one)")
    p.add_argument("--dicom-port", type=int, default=None, metavar="N",
                   help="DICOM port (default 11112, or a free one if taken)")
    p.add_argument("--http-port", type=int, default=None, metavar="N",
                   help="HTTP port (default 8000, or a free one if taken)")
    p.add_argument("--model", default="builtin:pneumonia-kermany", metavar="CKPT")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S",
                   help="give up waiting for the scores after S seconds")
    p.add_argument("--width", type=int, default=100, help="line width (default: 100)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.labeller:
        return run_labeller_demo(args.width)
    from radiolens.cli.demo_triage import run_triage_demo

    return run_triage_demo(args)


#: Width of the "rule" column of the labeller demo; longer rules get a line of their own.
_RULE_WIDTH = 24


def run_labeller_demo(width: int = 100) -> int:
    """Label the example reports and print each finding with its evidence sentence."""
    from radiolens import DISCLAIMER, ReportLabeler
    from radiolens.reports.examples import example_reports

    labeler = ReportLabeler().load()
    width = max(60, width)
    print(f"radiolens report labeller: {len(example_reports())} example reports "
          "(indication is shown but never labelled)\n")
    for rep in example_reports():
        fields = {k: rep.get(k, "") for k in ("indication", "findings", "impression")}
        result = labeler.label(fields, id=rep["id"])
        print(f"== {rep['id']} " + "=" * (width - len(rep["id"]) - 4))
        for key, text in fields.items():
            print(textwrap.fill(text, width, initial_indent=f"{key.upper():>11}: ",
                                subsequent_indent=" " * 13))
        print(f"\n  {'finding':<19} {'label':<9} {'rule':<24} evidence")
        for ev in result.evidence:
            if not ev.decisive:
                continue
            trig = f" ({ev.trigger})" if ev.trigger else ""
            sentence = ev.sentence or "(no finding is positive or uncertain)"
            rule = ev.rule + trig
            line = f"  {ev.finding:<19} {LABEL_WORDS[int(ev.label)]:<9} "
            indent = " " * (len(line) + _RULE_WIDTH + 1)
            if len(rule) > _RULE_WIDTH:  # a long rule gets its own line; evidence below it
                print(line + rule)
                line = indent
            else:
                line += f"{rule:<{_RULE_WIDTH}} "
            print(textwrap.fill(sentence, width, initial_indent=line, subsequent_indent=indent))
        print()
    print(DISCLAIMER)
    return 0
