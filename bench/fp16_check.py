"""Does accuracy hold in fp16? Shipped (fp16) builtins against their fp32 training runs.

    .venv/bin/python bench/fp16_check.py [PRESET ...]

For each shipped model whose fp32 run directory is still in ``runs/PRESET`` (written by
``bench/train_builtin.py``), both are run side by side with PyTorch eager on CPU over the
same validation images (the ``val_predictions.csv`` of the run) and compared: AUROC,
accuracy / sensitivity / specificity at the shipped threshold, the largest change in a
probability, and how many decisions flip. Results go to ``bench/results/fp16.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA_ROOT = ROOT.parent / "shared" / "data"


def _at_threshold(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    pred = p >= threshold
    pos, neg = y == 1, y == 0
    return {"accuracy": float((pred == pos).mean()),
            "sensitivity": float(pred[pos].mean()),
            "specificity": float((~pred[neg]).mean())}


def check(preset: str, data_root: Path) -> dict[str, object]:
    from sklearn.metrics import roc_auc_score

    from radiolens.inference import Predictor

    run = ROOT / "runs" / preset
    rows = list(csv.DictReader((run / "val_predictions.csv").open(encoding="utf-8")))
    label = next(k[:-5] for k in rows[0] if k.endswith("_true"))
    files = [str(data_root / r["id"]) for r in rows]
    y = np.array([int(float(r[f"{label}_true"])) for r in rows])
    shipped = Predictor(f"builtin:{preset}").load()
    threshold = shipped.thresholds[label]
    probs = {}
    for name, checkpoint in (("fp32", run), ("fp16", f"builtin:{preset}")):
        pred = shipped if name == "fp16" else Predictor(checkpoint).load()
        out = pred.predict_files(files)
        failed = [f.path for f in out if f.prediction is None]
        if failed:
            raise SystemExit(f"{len(failed)} validation images could not be read, "
                             f"first {failed[0]}")
        probs[name] = np.array([f.prediction.probabilities[label] for f in out])  # type: ignore[union-attr]
    result: dict[str, object] = {"preset": preset, "label": label, "n": len(rows),
                                 "threshold": threshold}
    for name, p in probs.items():
        result[name] = {"auroc": float(roc_auc_score(y, p)), **_at_threshold(y, p, threshold)}
    diff = np.abs(probs["fp32"] - probs["fp16"])
    result["max_abs_prob_change"] = float(diff.max())
    result["decisions_flipped"] = int(((probs["fp32"] >= threshold)
                                       != (probs["fp16"] >= threshold)).sum())
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("presets", nargs="*", default=["pneumonia-kermany", "abnormal-adult"])
    ap.add_argument("--data-root", default=str(DATA_ROOT))
    args = ap.parse_args()
    results = []
    for preset in args.presets:
        if not (ROOT / "runs" / preset / "val_predictions.csv").is_file():
            print(f"{preset}: no fp32 run in runs/{preset}; run bench/train_builtin.py "
                  f"{preset} first", file=sys.stderr)
            continue
        results.append(check(preset, Path(args.data_root)))
    if not results:
        return 2
    print(f"{'model':<20} {'n':>4} {'thr':>6} | {'':4} {'AUROC':>7} {'acc':>6} {'sens':>6} "
          f"{'spec':>6} | max |dp|  flips")
    for r in results:
        for name in ("fp32", "fp16"):
            m = r[name]
            assert isinstance(m, dict)
            head = (f"{r['preset']:<20} {r['n']:>4} {r['threshold']:>6.3f}" if name == "fp32"
                    else " " * 32)
            tail = (f"| {r['max_abs_prob_change']:.5f} {r['decisions_flipped']:>6}"
                    if name == "fp16" else "|")
            print(f"{head} | {name} {m['auroc']:7.4f} {m['accuracy']:6.3f} "
                  f"{m['sensitivity']:6.3f} {m['specificity']:6.3f} {tail}")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "fp16.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
