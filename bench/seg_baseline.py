"""Lung masks by a classical method beside the U-Net, on the same images in one run.

    .venv/bin/python bench/seg_baseline.py                      # the 17 validation masks
    .venv/bin/python bench/seg_baseline.py --split all --checkpoint runs/lungs-unet

Classical baseline (scikit-image, as in the seed material): contrast-limited histogram
equalisation, Otsu threshold for the dark (air-filled) pixels, components touching the
image border removed (air outside the body), opening and closing with a disk, the two
largest components, holes filled. The U-Net (``--checkpoint``, default ``builtin:lungs``)
is scored on the same images with the same Dice, IoU and HD95 at full resolution, and
both are timed (images/second, 2 threads).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "covid_chestxray_ieee8023" / "labels.csv"


def classical_mask(pixels: np.ndarray) -> np.ndarray:
    """Threshold-and-morphology lung mask of a 2-D image in [0, 1]."""
    from skimage import exposure, filters, morphology, segmentation

    from radiolens.segment.postprocess import clean_mask

    img = exposure.equalize_adapthist(np.clip(pixels, 0, 1), clip_limit=0.02)
    dark = img < filters.threshold_otsu(img)
    dark = segmentation.clear_border(dark)
    radius = max(1, round(min(img.shape) / 100))
    dark = morphology.binary_opening(dark, morphology.disk(radius))
    dark = morphology.binary_closing(dark, morphology.disk(2 * radius))
    return clean_mask(dark)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--split", default="val", help="val (default), train or all")
    ap.add_argument("--checkpoint", default="builtin:lungs")
    ap.add_argument("--json", default=str(HERE / "results" / "seg_baseline.json"))
    args = ap.parse_args()

    import torch

    from radiolens.imaging import read_image
    from radiolens.segment import LungSegmenter, score_masks
    from radiolens.segment.table import read_mask_table
    from radiolens.segment.train import read_mask

    torch.set_num_threads(2)
    pairs = read_mask_table(args.data)
    if args.split != "all":
        pairs = [p for p in pairs if p.split == args.split]
    images = [read_image(p.image).pixels for p in pairs]
    truths = [read_mask(p.mask) for p in pairs]
    seg = LungSegmenter(args.checkpoint).load()
    seg.segment(images[0])  # warm-up
    out: dict[str, object] = {"data": args.data, "split": args.split, "n": len(pairs)}
    for name, fn in (("classical (scikit-image)", classical_mask),
                     (f"U-Net ({args.checkpoint})", lambda im: seg.segment(im).mask)):
        t0 = time.perf_counter()
        preds = [fn(im) for im in images]
        seconds = time.perf_counter() - t0
        scores = score_masks([(p.image.name, pr, t)
                              for p, pr, t in zip(pairs, preds, truths, strict=True)])
        summary = scores.summary()
        summary["images_per_s"] = round(len(images) / seconds, 2)
        out[name] = summary
        d, j, h = summary["dice"], summary["iou"], summary["hd95"]
        print(f"{name:34s} Dice {d['mean']:.4f} [{d['ci'][0]:.4f}, {d['ci'][1]:.4f}]  "
              f"IoU {j['mean']:.4f}  HD95 {h['mean']:.1f} px  {summary['images_per_s']} img/s")
    Path(args.json).parent.mkdir(exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
