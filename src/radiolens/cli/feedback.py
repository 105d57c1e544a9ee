"""``radiolens feedback export``: the radiologists' signed reads as a label table."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import logging
import os
import secrets
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  radiolens feedback export --data-dir /srv/radiolens -o reviewed.csv
  radiolens feedback export --data-dir /srv/radiolens -o new.csv --since 2026-11-01
  radiolens train --data reviewed.csv --labels pneumonia -o runs/retrained

Each row is one image of a study whose read was signed (the version in force): image
(path), patient_id and study_id (pseudonymous: keyed hashes; the key is kept in
DATA_DIR/feedback_key so later exports agree), one column per finding (1 present,
0 absent, -1 uncertain), reviewed_at, version.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "feedback", help="export the signed reviews as a label table for training",
        description="Turn the radiologists' signed reads back into training data.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ex = actions.add_parser("export", help="write the reviewed labels as a CSV label table")
    ex.add_argument("--data-dir", default="radiolens-data", metavar="DIR",
                    help="the service's data folder (default ./radiolens-data)")
    ex.add_argument("--db", metavar="URL", help="database URL (default: SQLite in DIR)")
    ex.add_argument("-o", "--output", required=True, metavar="OUT.csv")
    ex.add_argument("--since", metavar="WHEN", type=_when,
                    help="only reads signed after this date or time (ISO 8601, UTC unless "
                         "it says otherwise), for increments")
    p.set_defaults(run=run)


def _when(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time, e.g. 2026-11-01 or "
            "2026-11-01T08:00") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _key(data_dir: Path) -> bytes:
    """The pseudonym key of this data folder (made on first use, readable by its owner)."""
    path = data_dir / "feedback_key"
    if path.is_file():
        return bytes.fromhex(path.read_text("ascii").strip())
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    return key


def run(args: argparse.Namespace) -> int:
    from radiolens.errors import ConfigError
    from radiolens.reports.writers import AtomicWriter
    from radiolens.worklist import default_db_path, open_worklist
    from radiolens.worklist.feedback import reviewed_labels

    data_dir = Path(args.data_dir)
    target = args.db or default_db_path(data_dir)
    if not args.db and not Path(target).exists():
        raise ConfigError(f"no worklist at {target}: give the --data-dir (or --db) that "
                          "`radiolens serve` uses")
    engine = open_worklist(target)
    try:
        rows = reviewed_labels(engine, _key(data_dir), since=args.since)
    finally:
        engine.dispose()
    findings = sorted({name for r in rows for name in r.labels})
    with AtomicWriter(args.output) as out:
        writer = csv.writer(out)
        writer.writerow(["image", "patient_id", "study_id", *findings, "reviewed_at",
                         "version"])
        for r in rows:
            writer.writerow([str((data_dir / r.image).resolve()), r.patient_id, r.study_id,
                             *(r.labels.get(f, "") for f in findings),
                             r.reviewed_at.isoformat(timespec="seconds"), r.version])
    studies = len({r.study_id for r in rows})
    names = ", ".join(findings) or "no findings"
    print(f"wrote {len(rows)} images of {studies} reviewed studies ({names}) to {args.output}")
    if not rows:
        log.warning("no signed read%s: the table has a header only",
                    f" after {args.since.isoformat()}" if args.since else "")
    return 0
