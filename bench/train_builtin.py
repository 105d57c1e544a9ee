"""Train the shipped models on ../shared/data, then time inference (eager vs ONNX Runtime).

    .venv/bin/python bench/train_builtin.py pneumonia-kermany --ship
    .venv/bin/python bench/train_builtin.py abnormal-adult --ship

``pneumonia-kermany``: DenseNet-121 on the ``kermany_pneumonia`` rows of labels.csv (the
issue's Kermany benchmark). ``abnormal-adult``: DenseNet-121, normal vs abnormal, on the
adult subsets (NIH 64 px, ieee8023, Figure1, Actualmed). The table's patient-level
``split`` column gives train/val. The public data hold no test images, so the validation
figures chose the model and its threshold: they are optimistic. Inference speed is measured
side by side in one run: PyTorch eager vs ONNX Runtime, on CPU, same threads, same images.
With ``--ship`` the best model is written in fp16 to ``src/radiolens/models/builtin/NAME``,
its operating threshold chosen again on the validation split with the fp16 weights (as
``radiolens thresholds`` does), with its card. ``--ship-only`` does that step alone for the
run already in ``runs/NAME``.
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


def ship(preset: str, run_dir: Path, data: str, threshold_method: str, command: str) -> None:
    """Write the run's weights in fp16 to the package, with thresholds and card.

    The operating threshold and validation metrics are chosen again with the fp16 weights
    through the path users take (``radiolens thresholds``: read the files, preprocess,
    predict), on the same validation split, so the shipped figures are what users get.
    """
    from radiolens.cli.main import main as radiolens
    from radiolens.models import load_run, read_model_info, save_run
    from radiolens.models.card import render_model_card

    staging = ROOT / "runs" / f"{preset}-fp16"
    if staging.exists():
        shutil.rmtree(staging)
    model, _ = load_run(run_dir)
    save_run(staging, model, read_model_info(run_dir), half=True)
    where = PRESETS[preset]["where"]
    assert isinstance(where, dict)
    code = radiolens(["thresholds", "--checkpoint", str(staging), "--data", data, "--split",
                      "val", "--method", threshold_method, "--device", "cpu",
                      *[a for k, v in where.items() for a in ("--where", f"{k}={v}")]])
    if code != 0:
        raise SystemExit(f"choosing the shipped thresholds failed (exit {code})")
    dest = ROOT / "src" / "radiolens" / "models" / "builtin" / preset
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "model.json"):
        shutil.copy2(staging / name, dest / name)
    card = HERE / "cards" / f"{preset}.yaml"
    text = card.read_text(encoding="utf-8").replace("{command}", command)
    (dest / "card.yaml").write_text(text, encoding="utf-8")
    (dest / "MODEL_CARD.md").write_text(
        render_model_card(f"builtin:{preset}", name=preset).rstrip("\n") + "\n",
        encoding="utf-8")
    print(f"shipped to {dest}")


PRESETS: dict[str, dict[str, object]] = {
    "pneumonia-kermany": {"where": {"source": "kermany_pneumonia"}, "labels": "pneumonia",
                          "epochs": 8, "threshold_method": "sensitivity:0.95"},
    "abnormal-adult": {"where": {"source": "nih_chestxray14_64px,covid_chestxray_ieee8023,"
                                           "figure1_covid,actualmed_covid"},
                       "labels": "abnormal", "epochs": 10,
                       "threshold_method": "sensitivity:0.9"},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("preset", choices=sorted(PRESETS))
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--model", default="densenet121")
    ap.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threshold-method", default=None, help="default: the preset's")
    ap.add_argument("--limit", type=int, default=None, help="smoke runs only")
    ap.add_argument("-o", "--output", default=None, help="default: runs/PRESET")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default=None, help="fine-tune from this run / builtin:NAME")
    ap.add_argument("--warmup-epochs", type=float, default=0.5)
    ap.add_argument("--crop", choices=["none", "lungs"], default="none")
    ap.add_argument("--outside-lungs", choices=["keep", "dim"], default="keep")
    ap.add_argument("--attention-penalty", type=float, default=0.0)
    ap.add_argument("--shortcut-augment", action="store_true")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="moving average of the weights (radiolens train --ema)")
    ap.add_argument("--ship", action="store_true",
                    help="write the result (fp16) and its card to "
                         "src/radiolens/models/builtin/PRESET")
    ap.add_argument("--ship-only", action="store_true",
                    help="skip training: ship the run already in runs/PRESET")
    args = ap.parse_args()
    preset = PRESETS[args.preset]
    epochs = int(args.epochs or preset["epochs"])  # type: ignore[call-overload]
    threshold_method = str(args.threshold_method or preset["threshold_method"])
    if not Path(args.data).is_file():
        print(f"no data at {args.data}; see ../shared/data/README.md", file=sys.stderr)
        return 2

    import torch

    from radiolens.logsafe import setup_logging
    from radiolens.train import TrainConfig, train

    setup_logging(0, False)
    torch.set_num_threads(args.threads)
    out = Path(args.output or ROOT / "runs" / args.preset)
    if args.ship_only:
        if not (out / "model.json").is_file():
            print(f"no trained run in {out}; run without --ship-only first", file=sys.stderr)
            return 2
        record = HERE / "results" / f"{out.name}.json"  # the command that trained it
        command = (json.loads(record.read_text())["command"] if record.is_file() else
                   f".venv/bin/python bench/train_builtin.py {args.preset} --ship")
        ship(args.preset, out, args.data, threshold_method,
             f"{command}, then .venv/bin/python bench/train_builtin.py {args.preset} "
             f"--ship-only -o {args.output or out}")
        return 0
    if out.exists():
        shutil.rmtree(out)
    config = TrainConfig(data=args.data, output=str(out), where=preset["where"],
                         labels=str(preset["labels"]), model=args.model,
                         image_size=args.image_size, epochs=epochs,
                         batch_size=args.batch_size, lr=args.lr,
                         warmup_epochs=args.warmup_epochs, patience=epochs,
                         threshold_method=threshold_method, limit=args.limit, device="cpu",
                         init=args.init, crop=args.crop, outside_lungs=args.outside_lungs,
                         attention_penalty=args.attention_penalty,
                         shortcut_augment=args.shortcut_augment, ema=args.ema)
    result = train(config, progress=sys.stderr.isatty())
    rec = result.validation["labels"][str(preset["labels"])]
    val_files = [line.split(",")[0] for line in
                 (out / "val_predictions.csv").read_text().splitlines()[1:]]
    root = Path(args.data).parent
    speed = time_inference(out, [str(root / f) for f in val_files], args.threads, 16)
    summary = {
        "command": " ".join([".venv/bin/python", *sys.argv]),
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
    # a run elsewhere than runs/PRESET (an experiment) keeps the shipped model's record
    record = args.preset if args.output is None or args.ship else out.name
    (HERE / "results" / f"{record}.json").write_text(text + "\n")
    if args.ship:
        ship(args.preset, out, args.data, threshold_method, summary["command"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
