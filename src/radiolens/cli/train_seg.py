"""``radiolens train-seg``: train a lung segmentation network."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from radiolens.cli._common import key_value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train-seg", help="train a lung segmentation network (MONAI U-Net) on image/mask pairs",
        description="Train a lung segmentation network on a label table with image and mask "
                    "columns (mask: PNG, 0 background, non-zero lung; blank rows are skipped) "
                    "and write RUN_DIR (model.safetensors, model.json, history.csv, "
                    "learning_curve.png, val_scores.csv, MODEL_CARD.md). Split by patient: "
                    "the table's split column, else a hash of patient_id.")
    p.add_argument("--data", required=True, metavar="CSV", help="table with image and mask "
                   "columns (paths relative to the table's folder)")
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR")
    p.add_argument("--images-root", metavar="DIR")
    p.add_argument("--where", type=key_value, action="append", metavar="COL=VALUE",
                   help="keep rows where COL equals VALUE (repeatable)")
    p.add_argument("--model", choices=["unet", "attention-unet"],
                   help="MONAI network (default unet: residual U-Net)")
    p.add_argument("--image-size", type=int, metavar="N", help="network input side "
                   "(default 192)")
    p.add_argument("--epochs", type=int, metavar="N", help="default 40")
    p.add_argument("--batch-size", type=int, metavar="N", help="default 8")
    p.add_argument("--lr", type=float, metavar="X", help="default 0.002")
    p.add_argument("--weight-decay", type=float, metavar="X")
    p.add_argument("--patience", type=int, metavar="N", help="stop after N epochs without a "
                   "better validation Dice (default 15)")
    p.add_argument("--val-fraction", type=float, metavar="X")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    p.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    p.add_argument("--limit", type=int, metavar="N", help="use at most N training pairs")
    p.set_defaults(run=run)


FIELDS = ("data", "output", "images_root", "model", "image_size", "epochs", "batch_size",
          "lr", "weight_decay", "patience", "val_fraction", "seed", "augment", "device",
          "threads", "limit")


def run(args: argparse.Namespace) -> int:
    from radiolens.segment.train import load_seg_config, train_seg

    overrides = {name: getattr(args, name) for name in FIELDS}
    if args.where:
        overrides["where"] = dict(args.where)
    config = load_seg_config(overrides)
    result = train_seg(config, progress=sys.stderr.isatty())
    dice = result.validation["dice"]
    ci = dice.get("ci") or [None, None]
    ci_s = f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci[0] is not None else ""
    print(f"run directory: {result.run_dir}")
    print(f"best epoch {result.best_epoch} of {result.epochs_run}; "
          f"{result.train_images_per_s:.1f} training images/s; {result.seconds:.0f} s")
    print(f"validation ({result.validation['n']} images, full resolution): "
          f"Dice {dice['mean']:.4f}{ci_s}, IoU {result.validation['iou']['mean']:.4f}, "
          f"HD95 {result.validation['hd95']['mean']:.1f} px")
    return 0
