"""Heat in lungs of classifiers' Grad-CAM maps on the public ieee8023 human lung masks.

    .venv/bin/python bench/heat_in_lungs.py builtin:abnormal-adult builtin:pneumonia-kermany
    .venv/bin/python bench/heat_in_lungs.py RUN_DIR --split val --json out.json

For each model: the mean fraction of heatmap mass inside the human lung mask (with a
bootstrap 95% CI), against what a uniform map scores (the lungs' share of the image),
over the ``labels.csv`` rows of ``covid_chestxray_ieee8023`` that have a mask.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "covid_chestxray_ieee8023"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data", default=str(DATA / "labels.csv"))
    ap.add_argument("--split", help="only rows of this split (train or val)")
    ap.add_argument("--limit", type=int, help="at most N images")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--backend", default="auto",
                    help="auto (class activation maps from OpenVINO / ONNX Runtime, equal to "
                         "Grad-CAM for DenseNet) or torch (MONAI Grad-CAM)")
    args = ap.parse_args(argv)

    from radiolens.explain.measure import masks_from_table, measure_heat_in_lungs
    from radiolens.inference import Predictor
    from radiolens.segment.table import read_mask_table

    pairs = read_mask_table(args.data)
    if args.split:
        pairs = [p for p in pairs if p.split == args.split]
    if args.limit:
        pairs = pairs[:args.limit]
    masks = masks_from_table(args.data)
    images = [str(p.image) for p in pairs]
    results = {}
    for ref in args.checkpoints:
        predictor = Predictor(ref, backend=args.backend).load()
        t0 = time.perf_counter()
        res = measure_heat_in_lungs(predictor, images, masks=masks)
        res["seconds"] = round(time.perf_counter() - t0, 1)
        res["backend"] = predictor.backend_
        results[ref] = res
        for name, rec in res["labels"].items():
            lo, hi = rec["ci"]
            print(f"{ref} [{name}]: heat in lungs {rec['mean']:.3f} [{lo:.3f}, {hi:.3f}] "
                  f"over {rec['n']} images (uniform map: {res['uniform']:.3f}; "
                  f"{rec['below_0.5']} below 0.5) in {res['seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
