"""The lung U-Net per backend, side by side: PyTorch eager against ONNX Runtime.

    .venv/bin/python bench/seg_speed.py                  # builtin:lungs, 32 images of 512 px
    .venv/bin/python bench/seg_speed.py --checkpoint runs/lungs --n 64

Times :meth:`LungSegmenter.segment_many` (resize to the network, the network, the map
back at the image's size, post-processing) on the same synthetic images, after one
warm-up call, best of 3 rounds; prints images/second per backend, their ratio and the
largest difference between the two probability maps.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="builtin:lungs")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "seg_speed.json")
    args = ap.parse_args()

    import torch

    from radiolens.segment import LungSegmenter

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:args.size, 0:args.size] / args.size
    images = [np.clip(0.5 + 0.3 * np.cos(6 * (xx - 0.5)) * np.cos(5 * (yy - 0.5))
                      + rng.normal(0, 0.05, xx.shape), 0, 1).astype(np.float32)
              for _ in range(args.n)]
    out: dict[str, float] = {}
    maps = {}
    for backend in ("torch", "onnx"):
        seg = LungSegmenter(args.checkpoint, backend=backend, threads=args.threads).load()
        seg.segment_many(images[:2])
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            seg.segment_many(images)
            best = min(best, time.perf_counter() - t0)
        out[f"{backend}_images_per_s"] = args.n / best
        maps[backend] = seg.probabilities(images[:4])
    out["onnx_over_torch"] = out["onnx_images_per_s"] / out["torch_images_per_s"]
    out["max_probability_difference"] = float(max(
        np.abs(a - b).max() for a, b in zip(maps["torch"], maps["onnx"], strict=True)))
    print(f"{args.checkpoint}, {args.n} images of {args.size} px, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"  torch {out['torch_images_per_s']:.1f} images/s, onnx "
          f"{out['onnx_images_per_s']:.1f} images/s: {out['onnx_over_torch']:.2f}x; "
          f"largest probability difference {out['max_probability_difference']:.1e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**vars(args), "out": str(args.out), **out}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
