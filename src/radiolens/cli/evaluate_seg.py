"""``radiolens evaluate-seg``: Dice, IoU and HD95 of lung masks against reference masks."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from radiolens.cli._common import key_value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate-seg", help="score lung masks against reference masks (Dice, IoU, HD95)",
        description="Segment each image of a table with image and mask columns (or read "
                    "masks already written by `radiolens segment`, --predictions) and report "
                    "Dice, IoU and the 95th-percentile Hausdorff distance (pixels of the "
                    "image) per image and overall, with bootstrap 95% CIs of the means.")
    p.add_argument("--data", required=True, metavar="CSV", help="table with image and mask")
    p.add_argument("--checkpoint", default="builtin:lungs", metavar="RUN_DIR")
    p.add_argument("--predictions", metavar="DIR", help="score DIR/<stem>_lung.png instead "
                   "of running a network")
    p.add_argument("--split", metavar="NAME", help="only rows whose split column is NAME "
                   "(e.g. val)")
    p.add_argument("--where", type=key_value, action="append", metavar="COL=VALUE")
    p.add_argument("--images-root", metavar="DIR")
    p.add_argument("-o", "--output", metavar="OUT_DIR", help="write per_image.csv and "
                   "summary.json here")
    p.add_argument("--n-boot", type=int, default=1000, metavar="N")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from radiolens.cli._common import progress
    from radiolens.errors import ConfigError
    from radiolens.imaging import read_image
    from radiolens.segment import LungSegmenter, score_masks
    from radiolens.segment.overlay import unique_stems
    from radiolens.segment.table import read_mask_table
    from radiolens.segment.train import read_mask

    where = dict(args.where or [])
    pairs = read_mask_table(args.data, args.images_root, where or None)
    if args.split:
        pairs = [p for p in pairs if p.split == args.split]
        if not pairs:
            raise ConfigError(f"no row with a mask has split {args.split!r}")
    seg = None if args.predictions else LungSegmenter(args.checkpoint, device=args.device).load()
    stems = unique_stems([str(p.image) for p in pairs])
    scored = []
    for pair, stem in progress(list(zip(pairs, stems, strict=True)), "scoring masks", "img"):
        truth = read_mask(pair.mask)
        if seg is not None:
            pred = seg.segment(read_image(pair.image).pixels).mask
        else:
            path = Path(args.predictions) / f"{stem}_lung.png"
            if not path.is_file():
                raise ConfigError(f"{path} does not exist; run `radiolens segment` on the "
                                  "table's images into that folder first")
            pred = read_mask(path)
        if pred.shape != truth.shape:
            raise ConfigError(f"{pair.image.name}: predicted mask is {pred.shape[1]}x"
                              f"{pred.shape[0]}, reference {truth.shape[1]}x{truth.shape[0]}")
        scored.append((pair.image.name, pred, truth))
    scores = score_masks(scored)
    summary = scores.summary(n_boot=args.n_boot)
    what = args.predictions or args.checkpoint
    print(f"{what} on {summary['n']} images of {args.data}"
          + (f" (split {args.split})" if args.split else ""))
    for key, unit in (("dice", ""), ("iou", ""), ("hd95", " px")):
        rec = summary[key]
        assert isinstance(rec, dict)
        lo, hi = rec["ci"]
        ci = f" [95% CI {lo:.4f}, {hi:.4f}]" if lo is not None else ""
        fmt = ".1f" if key == "hd95" else ".4f"
        mean = "n/a" if rec["mean"] is None else format(rec["mean"], fmt)
        med = "n/a" if rec["median"] is None else format(rec["median"], fmt)
        print(f"  {key.upper():5s} mean {mean}{unit}{ci}; median {med}{unit}")
    worst = np.argsort(scores.dice)[:3]
    print("  lowest Dice: " + ", ".join(f"{scores.names[i]} {scores.dice[i]:.3f}"
                                        for i in worst))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        with (out / "per_image.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["image", "dice", "iou", "hd95_px"])
            for row in zip(scores.names, scores.dice, scores.iou, scores.hd95, strict=True):
                w.writerow([row[0], f"{row[1]:.5f}", f"{row[2]:.5f}", f"{row[3]:.2f}"])
        (out / "summary.json").write_text(json.dumps(
            {"masks": str(what), "data": str(args.data), "split": args.split, **summary},
            indent=2) + "\n", encoding="utf-8")
        print(f"per-image scores: {out / 'per_image.csv'}")
    return 0
