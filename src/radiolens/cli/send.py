"""``radiolens send``: a small DICOM C-STORE client."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_RASTER = (".png", ".jpg", ".jpeg")


def add_parser(sub: Any) -> None:
    # No radiolens.dicomnet import here: it loads pydicom and pynetdicom, which a core
    # install lacks (the parser is built for every command); run() resolves the default.
    p = sub.add_parser(
        "send", help="send DICOM files to a DICOM peer (C-STORE)",
        description="Send DICOM files (or folders of them) to AE@HOST:PORT, e.g. to a "
                    "radiolens service or a PACS. Files that cannot be sent are listed. "
                    "PNG/JPEG images must be converted first: radiolens convert IN.png -o DIR.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--to", required=True, metavar="AE@HOST:PORT")
    p.add_argument("--calling-ae", metavar="AE",
                   help="our AE title (default: radiolens.dicomnet.DEFAULT_CALLING_AE, "
                        "RADIOLENS-SCU)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S")
    p.set_defaults(run=run)


def _convert_hint(path: Path) -> str:
    return (f"{path} is not DICOM; convert it first with `radiolens convert {path} -o DIR`, "
            "then send DIR")


def run(args: argparse.Namespace) -> int:
    from radiolens.dicomnet import DEFAULT_CALLING_AE, parse_ae_address, send_files
    from radiolens.errors import ConfigError
    from radiolens.imaging import iter_image_files

    parse_ae_address(args.to)
    for raw in args.paths:
        path = Path(raw)
        if not path.exists():
            raise ConfigError(f"{raw}: no such file or folder")
        if path.is_file() and path.suffix.lower() in _RASTER:
            raise ConfigError(_convert_hint(path))
    found = list(iter_image_files(args.paths))
    files = [p for p in found if p.suffix.lower() not in _RASTER]
    skipped = len(found) - len(files)
    if skipped:
        log.warning("skipped %d PNG/JPEG file(s): not DICOM; convert them first with "
                    "`radiolens convert`", skipped)
    if not files:
        raise ConfigError("no DICOM files found in " + ", ".join(args.paths))
    report = send_files(files, args.to, calling_ae=args.calling_ae or DEFAULT_CALLING_AE,
                        timeout=args.timeout)
    for path, reason in report.failed:
        log.error("not sent: %s: %s", path, reason)
    print(f"sent {len(report.sent)} of {len(files)} files to {args.to}")
    return 1 if report.failed else 0
