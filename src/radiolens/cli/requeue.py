"""``radiolens requeue``: give failed studies a new scoring job."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "requeue", help="re-queue failed studies for scoring",
        description="Give failed studies a new scoring job (after fixing what made them "
                    "fail: a full disk, a bad model, a broken file). Works on the data "
                    "folder of a running or stopped service; the API has the same as "
                    "POST /api/admin/requeue.")
    p.add_argument("--failed", action="store_true", required=True,
                   help="re-queue studies whose status is failed (required)")
    p.add_argument("--study", metavar="UID", help="only this Study Instance UID")
    p.add_argument("--data-dir", metavar="DIR", required=True, help="the service's data folder")
    p.add_argument("--db", metavar="URL", help="database URL (default: SQLite in DIR)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from radiolens.errors import ConfigError
    from radiolens.worklist import default_db_path, open_worklist, requeue_failed

    data_dir = Path(args.data_dir)
    if args.db is None and not default_db_path(data_dir).is_file():
        raise ConfigError(f"no worklist in {data_dir} ({default_db_path(data_dir).name} is "
                          "missing); pass the --data-dir of the service, or --db URL")
    engine = open_worklist(args.db or default_db_path(data_dir))
    uids = requeue_failed(engine, args.study)
    for uid in uids:
        print(uid)
    print(f"re-queued {len(uids)} failed {'study' if len(uids) == 1 else 'studies'}")
    return 0
