"""``radiolens send``: a small DICOM C-STORE client."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "send", help="send DICOM files to a DICOM peer (C-STORE)",
        description="Send DICOM files (or folders of them) to AE@HOST:PORT, e.g. to a "
                    "radiolens service or a PACS. Files that cannot be sent are listed.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--to", required=True, metavar="AE@HOST:PORT")
    p.add_argument("--calling-ae", default="RADIOLENS", metavar="AE")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.dicomnet import parse_ae_address, send_files
    from radiolens.errors import ConfigError
    from radiolens.imaging import iter_image_files

    parse_ae_address(args.to)
    for raw in args.paths:
        if not Path(raw).exists():
            raise ConfigError(f"{raw}: no such file or folder")
    files = [p for p in iter_image_files(args.paths)
             if p.suffix.lower() not in (".png", ".jpg", ".jpeg")]
    if not files:
        raise ConfigError("no DICOM files found in " + ", ".join(args.paths))
    report = send_files(files, args.to, calling_ae=args.calling_ae, timeout=args.timeout)
    for path, reason in report.failed:
        log.error("not sent: %s: %s", path, reason)
    print(f"sent {len(report.sent)} of {len(files)} files to {args.to}")
    return 1 if report.failed else 0
