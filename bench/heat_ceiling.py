"""How much heat in lungs can a Grad-CAM map of a given grid reach at best?

    .venv/bin/python bench/heat_ceiling.py

A DenseNet-121 at 128 px ends in a 4 x 4 feature map; Grad-CAM upsamples that grid
(bilinear) to the image. Even a map that follows the lungs exactly on that grid spills
over their borders. For each of the 319 human masks of ieee8023 this script builds the
best such map, the lung share of each grid cell (to the power 1, or 4 to sharpen it),
on the whole image or on the lung-field crop, and reports its heat in lungs: the ceiling
for any model explained on that grid. Numpy/torch only, no model involved.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "covid_chestxray_ieee8023" / "labels.csv"


def main() -> int:
    import torch
    import torch.nn.functional as F

    from radiolens.explain.lungs import heat_in_lungs
    from radiolens.segment.crop import lung_box, paste_box
    from radiolens.segment.table import read_mask_table
    from radiolens.segment.train import read_mask

    rows: dict[str, list[float]] = {}
    pairs = read_mask_table(DATA)
    for pair in pairs:
        m = read_mask(pair.mask)
        box = lung_box(m)
        views = {"whole image": (m.astype(np.float32), None),
                 "lung-field crop": (m[box.top:box.bottom, box.left:box.right]
                                     .astype(np.float32), box)}
        rows.setdefault("uniform map, whole image", []).append(
            heat_in_lungs(np.ones(m.shape), m) or 0.0)
        rows.setdefault("uniform map, lung-field crop", []).append(
            heat_in_lungs(paste_box(np.ones(box.shape), box, m.shape), m) or 0.0)
        for view, (sub, b) in views.items():
            t = torch.from_numpy(sub)[None, None]
            for grid in (4, 7, 8):
                cells = F.adaptive_avg_pool2d(t, (grid, grid))
                for power in (1, 4):
                    up = F.interpolate(cells**power, size=sub.shape, mode="bilinear",
                                       align_corners=False)[0, 0].numpy()
                    heat = up if b is None else paste_box(up, b, m.shape)
                    key = f"{grid}x{grid} grid, lung share^{power}, {view}"
                    rows.setdefault(key, []).append(heat_in_lungs(heat, m) or 0.0)
    out = {k: round(float(np.mean(v)), 3) for k, v in rows.items()}
    for k, v in out.items():
        print(f"{k:48s} {v:.3f}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "heat_ceiling.json").write_text(
        json.dumps({"n": len(pairs), "ceilings": out}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
