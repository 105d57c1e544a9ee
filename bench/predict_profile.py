"""Where each millisecond of ``radiolens predict`` goes, stage by stage, per backend.

    .venv/bin/python bench/predict_profile.py                          # shipped pneumonia model
    .venv/bin/python bench/predict_profile.py --checkpoint builtin:abnormal-adult --n 200

Stages, each timed on its own over the same ``--n`` Kermany radiographs, one thread after
another (no overlap), in ms per image: starting Python and importing what the backend
needs (a fresh process), loading the model, reading and decoding the file, segmenting the
lungs (models that crop to the lungs; batches of 16), cropping and resizing to the
model's input, and the model (batches of 16). Then the same files through
``Predictor.iter_files`` (what ``predict`` runs: two reading threads overlap reading with
the model), whose time per image shows how much of the stage sum the overlap hides.
Writes ``bench/results/predict_profile.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "labels.csv"

IMPORTS = {"torch": "import radiolens.inference, torch, monai",
           "onnx": "import radiolens.inference, onnxruntime",
           "openvino": "import radiolens.inference, openvino"}


def _import_ms(backend: str) -> float:
    """Python start-up plus the imports a backend needs, in a fresh process (best of 3)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS.get(backend, IMPORTS["openvino"])],
                       check=True)
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def profile(checkpoint: str, backend: str, files: list[str], threads: int,
            batch: int = 16) -> dict[str, float]:
    import numpy as np

    from radiolens.imaging import read_image
    from radiolens.inference import Predictor

    out: dict[str, float] = {"import_ms": _import_ms(backend)}
    t0 = time.perf_counter()
    predictor = Predictor(checkpoint, backend=backend, threads=threads,  # type: ignore[arg-type]
                          batch_size=batch).load()
    out["load_ms"] = (time.perf_counter() - t0) * 1000
    n = len(files)
    t0 = time.perf_counter()
    images = [read_image(f) for f in files]
    out["read_ms"] = (time.perf_counter() - t0) * 1000 / n
    masks: list[object | None] = [None] * n
    if predictor.uses_lungs:
        predictor.lung_masks(images[:2])  # warm-up
        t0 = time.perf_counter()
        masks = [m for i in range(0, n, batch)
                 for m in predictor.lung_masks(images[i:i + batch])]
        out["segment_ms"] = (time.perf_counter() - t0) * 1000 / n
    t0 = time.perf_counter()
    inputs = np.stack([predictor.preprocess(im, m) for im, m in zip(images, masks, strict=True)])
    out["preprocess_ms"] = (time.perf_counter() - t0) * 1000 / n
    predictor.predict_batch(inputs[:batch])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        predictor.predict_batch(inputs[i:i + batch])
    out["model_ms"] = (time.perf_counter() - t0) * 1000 / n
    out["stages_ms"] = sum(v for k, v in out.items() if k not in ("import_ms", "load_ms"))
    t0 = time.perf_counter()
    for _ in predictor.iter_files(files):
        pass
    out["iter_files_ms"] = (time.perf_counter() - t0) * 1000 / n
    out["backend"] = predictor.backend_  # type: ignore[assignment]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="builtin:pneumonia-kermany")
    ap.add_argument("--backends", default="torch,onnx,openvino")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=str(HERE / "results" / "predict_profile.json"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    root = DATA.parent
    with DATA.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["source"] == "kermany_pneumonia"]
    files = [str(root / r["image"]) for r in rows[:: max(1, len(rows) // args.n)]][:args.n]
    results = {}
    for backend in args.backends.split(","):
        results[backend] = profile(args.checkpoint, backend, files, args.threads)
        print(f"{backend}: " + ", ".join(
            f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in results[backend].items()), flush=True)
    print(f"\n{args.checkpoint}, {len(files)} images, {args.threads} threads, load average "
          f"{os.getloadavg()[0]:.2f}; ms per image (start-up and load: ms per run)")
    stages = ["import_ms", "load_ms", "read_ms", "segment_ms", "preprocess_ms", "model_ms",
              "stages_ms", "iter_files_ms"]
    print("| backend | " + " | ".join(s.removesuffix("_ms") for s in stages) + " |")
    print("|---" * (len(stages) + 1) + "|")
    for backend, rec in results.items():
        cells = [f"{rec[s]:.1f}" if s in rec else "-" for s in stages]
        print(f"| {backend} ({rec['backend']}) | " + " | ".join(cells) + " |")
    Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "n": len(files),
                                           "threads": args.threads, "results": results},
                                          indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
