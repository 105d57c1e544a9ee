"""``radiolens segment``: lung masks (PNG) and overlays for radiographs."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "segment", help="lung masks for radiographs (PNG mask + overlay per image)",
        description="Segment the lungs of each image and write OUT_DIR/<stem>_lung.png "
                    "(8-bit, 0 background, 255 lung, the input's size), "
                    "<stem>_lung_overlay.png and segment.csv (one row per image with the "
                    "quality check). Exits 1 when a mask is implausible (check those images).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--checkpoint", default="builtin:lungs", metavar="RUN_DIR",
                   help="segmentation run directory (default builtin:lungs)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
    p.add_argument("--batch-size", type=int, default=8, metavar="N")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-overlay", dest="overlay", action="store_false",
                   help="write the masks only")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.cli._common import image_files, read_each
    from radiolens.segment import LungSegmenter
    from radiolens.segment.overlay import overlay_mask, save_png

    files = image_files(args.paths)
    seg = LungSegmenter(args.checkpoint, device=args.device, batch_size=args.batch_size).load()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    flagged = unreadable = 0
    for path, stem, pixels, error in read_each(files, "segmenting"):
        if error is not None:
            rows.append([path, "", "", "unreadable", error])
            unreadable += 1
            continue
        result = seg.segment(pixels)
        mask_path = out / f"{stem}_lung.png"
        save_png(str(mask_path), result.as_png_array())
        overlay = ""
        if args.overlay:
            overlay = str(out / f"{stem}_lung_overlay.png")
            save_png(overlay, overlay_mask(pixels, result.mask))
        q = result.quality
        flagged += not q.ok
        rows.append([path, str(mask_path), overlay, "ok" if q.ok else "check image",
                     "; ".join(q.reasons)])
    with (out / "segment.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "mask", "overlay", "quality", "reasons"])
        w.writerows(rows)
    print(f"{len(files) - unreadable} masks written to {out}"
          + (f"; {flagged} implausible (check image): see segment.csv" if flagged else "")
          + (f"; {unreadable} unreadable" if unreadable else ""))
    for row in rows:
        if row[3] != "ok":
            print(f"  {row[0]}: {row[3]}: {row[4]}")
    return 1 if flagged or unreadable else 0
