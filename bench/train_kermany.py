"""Train DenseNet-121 on the public Kermany training split, then time inference.

Reproduces the pneumonia figures in bench/RESULTS.md (and the shipped model
``builtin:pneumonia-kermany`` with ``--ship``)::

    .venv/bin/python bench/train_kermany.py --epochs 7 --image-size 128

Data: the ``kermany_pneumonia`` rows of ../shared/data/labels.csv (their patient-level
``split`` column gives train/val). The public data hold no Kermany test images, so the
validation figures below chose the model and its threshold: they are optimistic.
Inference speed is measured side by side in one run: PyTorch eager vs ONNX Runtime, on CPU,
same threads, same images.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "labels.csv"


def time_inference(run_dir: Path, files: list[str], threads: int, batch: int) -> dict[str, float]:
    import torch

    from radiolens.imaging import read_image
    from radiolens.inference import Predictor

    torch.set_num_threads(threads)
    images = [read_image(f) for f in files]
    out: dict[str, float] = {}
    for backend in ("torch", "onnx"):
        pred = Predictor(run_dir, backend=backend, batch_size=batch, threads=threads).load()
        x = np.stack([pred.preprocess(im) for im in images])
        pred.predict_batch(x[:batch])  # warm-up
        t0 = time.perf_counter()
        for start in range(0, len(x), batch):
            pred.predict_batch(x[start:start + batch])
        out[f"{backend}_images_per_s"] = len(x) / (time.perf_counter() - t0)
    out["onnx_over_torch"] = out["onnx_images_per_s"] / out["torch_images_per_s"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--model", default="densenet121")
    ap.add_argument("--epochs", type=int, default=7)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threshold-method", default="sensitivity:0.95")
    ap.add_argument("--limit", type=int, default=None, help="smoke runs only")
    ap.add_argument("-o", "--output", default=str(ROOT / "runs" / "pneumonia-kermany"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ship", action="store_true",
                    help="copy the result (fp16) to src/radiolens/models/builtin/"
                         "pneumonia-kermany")
    args = ap.parse_args()
    if not Path(args.data).is_file():
        print(f"no data at {args.data}; see ../shared/data/README.md", file=sys.stderr)
        return 2

    import torch

    from radiolens.cli.main import setup_logging
    from radiolens.train import TrainConfig, train

    setup_logging(0, False)
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    if out.exists():
        shutil.rmtree(out)
    config = TrainConfig(data=args.data, output=str(out), where={"source": "kermany_pneumonia"},
                         labels="pneumonia", model=args.model, image_size=args.image_size,
                         epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         warmup_epochs=0.5, patience=args.epochs,
                         threshold_method=args.threshold_method, limit=args.limit,
                         device="cpu")
    result = train(config, progress=sys.stderr.isatty())
    rec = result.validation["labels"]["pneumonia"]
    val_files = [line.split(",")[0] for line in
                 (out / "val_predictions.csv").read_text().splitlines()[1:]]
    root = Path(args.data).parent
    speed = time_inference(out, [str(root / f) for f in val_files], args.threads, 16)
    summary = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": args.model, "image_size": args.image_size, "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch, "wall_seconds": round(result.seconds, 1),
        "train_images_per_s": round(result.train_images_per_s, 2),
        "val": {k: rec.get(k) for k in ("n", "n_positive", "auroc", "auroc_ci", "threshold",
                                        "accuracy", "sensitivity", "specificity", "f1")},
        "val_ece": rec["calibration"]["ece"],
        "inference_cpu": {k: round(v, 2) for k, v in speed.items()},
        "threads": args.threads, "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"kermany_{args.model}_{args.image_size}.json").write_text(text + "\n")
    if args.ship:
        from radiolens.models import load_run, read_model_info, save_run

        dest = ROOT / "src" / "radiolens" / "models" / "builtin" / "pneumonia-kermany"
        model, _ = load_run(out)
        save_run(dest, model, read_model_info(out), half=True)
        print(f"shipped to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
