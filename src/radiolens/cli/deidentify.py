"""``radiolens deidentify``: pseudonymous copies of DICOM files, checked for burned-in text.

Exit codes: 0 every file written and none flagged; 1 some file is flagged (burned-in
text suspected or declared, pixels not checkable) or could not be de-identified (unless
``--allow-flagged``); 2 a usage mistake (missing input, output folder inside the input,
no DICOM file at all, OCR not installed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  radiolens deidentify incoming/ shareable/ --salt-file project.key
  radiolens deidentify one.dcm shareable/ --no-ocr

Outputs: OUT/<new StudyInstanceUID>/<new SOPInstanceUID>.dcm and OUT/deidentify_report.json
(and .csv): one row per file with its status; "burned-in text suspected" rows need a person
to check (and mask) the pixels before the files are shared. The same salt gives the same
pseudonyms, UIDs and date shift; keep it secret, as anyone holding it can test guesses.
The pixels are never changed. The report names no input file and holds no OCR text.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "deidentify", help="de-identify DICOM files (PS3.15 basic profile via dicognito) and "
                           "flag burned-in text with OCR",
        description="Write pseudonymous copies of DICOM files: names, ids, UIDs, dates, "
                    "addresses and equipment replaced consistently (dicognito), private "
                    "tags, overlays and free text removed, and each image checked for "
                    "burned-in text with Tesseract OCR.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="a DICOM file or a folder (searched recursively)")
    p.add_argument("output", metavar="OUT", help="output folder (not inside IN)")
    salt = p.add_mutually_exclusive_group()
    salt.add_argument("--salt", metavar="TEXT",
                      help="secret that makes the pseudonyms reproducible (default: "
                           "$RADIOLENS_DEID_SALT, else random per run); prefer --salt-file, "
                           "as a command line is visible to other users")
    salt.add_argument("--salt-file", metavar="FILE", help="read the salt from FILE")
    p.add_argument("--no-ocr", action="store_true",
                   help="skip the burned-in text check (images are then listed as "
                        "'pixel data not checked' unless BurnedInAnnotation is NO)")
    p.add_argument("--min-confidence", type=float, default=60.0, metavar="C",
                   help="Tesseract word confidence (0-100) that counts as text (default 60)")
    p.add_argument("--min-chars", type=int, default=3, metavar="N",
                   help="letters/digits a word needs to count (default 3)")
    p.add_argument("--allow-flagged", action="store_true",
                   help="exit 0 even when files are flagged (they are still listed)")
    p.set_defaults(run=run)


def _salt(args: argparse.Namespace) -> str | None:
    from radiolens.errors import ConfigError

    if args.salt_file:
        try:
            with open(args.salt_file, encoding="utf-8") as fh:
                text = fh.read().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the salt file {args.salt_file}: "
                              f"{exc.strerror or exc}") from None
        if not text:
            raise ConfigError(f"the salt file {args.salt_file} is empty")
        return text
    if args.salt is not None:
        if not args.salt.strip():
            raise ConfigError("--salt is empty")
        return str(args.salt)
    return os.environ.get("RADIOLENS_DEID_SALT") or None


def run(args: argparse.Namespace) -> int:
    from radiolens.privacy import REPORT_JSON, Deidentifier, check_paths

    check_paths(args.input, args.output)  # before any slow start
    salt = _salt(args)
    if salt is None:
        log.warning("no --salt given: pseudonyms are random and differ from run to run")
    deid = Deidentifier(salt, ocr=not args.no_ocr, min_confidence=args.min_confidence,
                        min_chars=args.min_chars).load()
    report = deid.run(args.input, args.output)
    print(f"de-identified {len(report.files)} files into {args.output} "
          f"(report: {os.path.join(args.output, REPORT_JSON)})")
    if report.skipped:
        print(f"skipped {len(report.skipped)} files that are not DICOM:", file=sys.stderr)
        for path in report.skipped:
            print(f"  {path}", file=sys.stderr)
    if report.failed:
        print(f"could not de-identify {len(report.failed)} DICOM files (nothing written for "
              "them):", file=sys.stderr)
        for path, kind in report.failed:
            print(f"  {path} ({kind})", file=sys.stderr)
    unchecked = [f for f in report.files if f.status == "pixel data not checked"
                 and not f.flagged]
    if unchecked:
        print(f"warning: {len(unchecked)} images were not checked for burned-in text "
              "(--no-ocr); check them before sharing", file=sys.stderr)
    if report.flagged:
        print(f"WARNING: {len(report.flagged)} files may show patient data in their pixels "
              "(burned-in text); do not share them before a person has checked them:",
              file=sys.stderr)
        for f in report.flagged:
            print(f"  {f.output}: {f.status}", file=sys.stderr)
    if (report.flagged or report.failed) and not args.allow_flagged:
        return 1
    return 0
