"""``radiolens explain``: Grad-CAM heatmaps (PNG) and overlays, with heat in lungs."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "explain", help="Grad-CAM heatmaps for images (8-bit PNG + overlay) and how much "
                        "of each lies in the lungs",
        description="Write OUT_DIR/<stem>_<label>_heat.png (8-bit greyscale, the input's "
                    "size, 0..255 relative importance), <stem>_<label>_overlay.png and "
                    "explain.csv with the probability and the heat in lungs (fraction of the "
                    "heatmap inside the lung mask from --lung-model). A heatmap shows where "
                    "the model looked, not where the disease is.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--checkpoint", default="builtin:pneumonia-kermany", metavar="RUN_DIR")
    p.add_argument("--label", metavar="NAME", help="which label to explain (default: all "
                   "of the model's labels)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
    p.add_argument("--lung-model", default="builtin:lungs", metavar="RUN_DIR",
                   help="segmentation model for heat in lungs ('none' to skip)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.cli._common import image_files, read_each
    from radiolens.errors import ConfigError
    from radiolens.explain import (
        ATTENTION_WARNING,
        attention_outside,
        heat_in_lungs,
        heat_to_uint8,
        overlay_heatmap,
    )
    from radiolens.inference import Predictor
    from radiolens.segment import LungSegmenter
    from radiolens.segment.overlay import save_png

    files = image_files(args.paths)
    predictor = Predictor(args.checkpoint, device=args.device).load()
    labels = predictor.labels
    if args.label:
        if args.label not in labels:
            raise ConfigError(f"label {args.label!r} is not one of the model's: "
                              f"{', '.join(labels)}")
        labels = [args.label]
    seg = None
    if args.lung_model != "none":
        seg = (predictor.lung_segmenter() if predictor.uses_lungs
               and predictor.info_.preprocessing.lung_model == args.lung_model
               else LungSegmenter(args.lung_model, device=args.device).load())
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    unreadable = outside = 0
    for path, stem, pixels, error in read_each(files, "explaining"):
        if error is not None:
            rows.append([path, "", "", "", "", error])
            unreadable += 1
            continue
        mask = seg.segment(pixels).mask if seg is not None else None
        model_mask = mask if predictor.uses_lungs else None
        pred = predictor.predict([pixels], masks=[model_mask])[0]
        for name in labels:
            heat = predictor.explain(pixels, name, mask=model_mask)
            heat_path = out / f"{stem}_{name}_heat.png"
            save_png(str(heat_path), heat_to_uint8(heat))
            save_png(str(out / f"{stem}_{name}_overlay.png"), overlay_heatmap(pixels, heat))
            frac = heat_in_lungs(heat, mask) if mask is not None else None
            note = ATTENTION_WARNING if (attention_outside(frac)
                                         and pred.flags.get(name)) else ""
            outside += bool(note)
            rows.append([path, name, f"{pred.probabilities[name]:.4f}",
                         "yes" if pred.flags[name] else "no",
                         "" if frac is None else f"{frac:.3f}", note])
    with (out / "explain.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "probability", "flagged", "heat_in_lungs", "note"])
        w.writerows(rows)
    fracs = [float(r[4]) for r in rows if r[4]]
    summary = (f"; heat in lungs mean {sum(fracs) / len(fracs):.2f}" if fracs else "")
    print(f"{len(files) - unreadable} images explained into {out}{summary}"
          + (f"; {outside} flagged with attention outside the lungs" if outside else "")
          + (f"; {unreadable} unreadable" if unreadable else ""))
    print("Heatmaps show where the model looked; they assist, and never replace, the "
          "radiologist.")
    return 1 if unreadable else 0
