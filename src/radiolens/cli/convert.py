"""``radiolens convert``: turn PNG/JPEG radiographs into DICOM Secondary Capture files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_RASTER = (".png", ".jpg", ".jpeg")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "convert", help="convert PNG/JPEG radiographs to DICOM (Secondary Capture)",
        description="Wrap PNG or JPEG radiographs (files or folders of them) in DICOM "
                    "Secondary Capture files, one OUT_DIR/<name>.dcm per image, e.g. to "
                    "send them with `radiolens send`. 16-bit PNGs stay 16-bit; colour "
                    "becomes grey.")
    p.add_argument("paths", nargs="+", metavar="IN", help="PNG/JPEG files or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="folder for the DICOM files (created if missing)")
    p.add_argument("--patient-id", default="", metavar="ID",
                   help="Patient ID for every file (default ANON-<hash of the image>)")
    p.add_argument("--patient-name", default="", metavar="FAMILY^GIVEN")
    p.add_argument("--modality", default="DX", help="Modality (default DX)")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(run=run)


def _inputs(paths: list[str]) -> list[Path]:
    from radiolens.errors import ConfigError

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*")
                            if p.is_file() and p.suffix.lower() in _RASTER)
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"{raw}: no such file or folder")
    if not found:
        raise ConfigError("no PNG or JPEG files found in " + ", ".join(paths))
    return found


def run(args: argparse.Namespace) -> int:
    import hashlib

    from radiolens.errors import ConfigError, ImageReadError, InputFormatError
    from radiolens.imaging import png_to_dicom

    files = _inputs(args.paths)
    out_dir = Path(args.output)
    targets: dict[Path, Path] = {}
    for src in files:
        dst = out_dir / f"{src.stem}.dcm"
        if dst in targets.values():
            raise ConfigError(f"{src} and another input would both be written to {dst}: "
                              "rename one, or convert them into different folders")
        if dst.exists() and not args.force:
            raise ConfigError(f"{dst} exists; pass --force to replace it")
        targets[src] = dst
    failed = 0
    for src, dst in targets.items():
        patient_id = args.patient_id
        if not patient_id:
            patient_id = "ANON-" + hashlib.sha256(src.read_bytes()).hexdigest()[:10]
        try:
            png_to_dicom(src, dst, patient_id=patient_id, patient_name=args.patient_name,
                         modality=args.modality)
        except (ImageReadError, InputFormatError) as exc:
            failed += 1
            log.error("not converted: %s", exc)
    print(f"converted {len(targets) - failed} of {len(targets)} files into {out_dir}")
    return 1 if failed else 0
