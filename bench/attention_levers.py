"""Which training lever moves a classifier's attention onto the lungs, at what AUROC cost.

    .venv/bin/python bench/attention_levers.py                       # all levers
    .venv/bin/python bench/attention_levers.py --levers crop,crop+dim --epochs 2

Each lever fine-tunes the same starting model (``--init``, default the shipped
``builtin:abnormal-adult``) for the same epochs on the same images (the abnormal-adult
preset of ``bench/train_builtin.py``: NIH 64 px, ieee8023, Figure1, Actualmed; patient
split from ``labels.csv``), so only the lever differs. ``finetune`` (no lever) is the
control for the extra training itself. Reported per lever, side by side in one run:
validation AUROC (with its bootstrap CI) and heat in lungs (Grad-CAM mass inside the human
lung masks of ieee8023, all 319 and the 17 of the validation split), against the starting
model and a uniform map. Results go to ``bench/results/attention_levers.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"

LEVERS: dict[str, dict[str, Any]] = {
    "finetune": {},
    "crop": {"crop": "lungs"},
    "dim": {"outside_lungs": "dim"},
    "crop+dim": {"crop": "lungs", "outside_lungs": "dim"},
    "shortcut-aug": {"shortcut_augment": True},
    "penalty": {"attention_penalty": 1.0},
    "crop+dim+penalty": {"crop": "lungs", "outside_lungs": "dim", "attention_penalty": 1.0},
}


def heat(ref: str, pairs: list[Any], masks: dict[str, Path]) -> dict[str, Any]:
    from radiolens.explain.measure import measure_heat_in_lungs
    from radiolens.inference import Predictor

    predictor = Predictor(ref).load()
    out = {}
    for name, subset in (("all", pairs), ("val", [p for p in pairs if p.split == "val"])):
        res = measure_heat_in_lungs(predictor, [str(p.image) for p in subset], masks=masks,
                                    n_boot=500)
        rec = next(iter(res["labels"].values()))
        out[name] = {"mean": rec["mean"], "ci": rec["ci"], "n": rec["n"],
                     "uniform": res["uniform"], "below_0.5": rec["below_0.5"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levers", default=",".join(LEVERS))
    ap.add_argument("--init", default="builtin:abnormal-adult")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--limit", type=int, default=500, help="training images per lever")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--out", default=str(ROOT / "runs" / "levers"))
    ap.add_argument("--lung-model", default="builtin:lungs",
                    help="segmentation model for the crop, dimming and penalty")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", metavar="JSON", help="carry over levers already measured "
                    "with the same settings (a results file of an earlier, interrupted run)")
    args = ap.parse_args()

    import torch

    from radiolens.explain.measure import masks_from_table
    from radiolens.logsafe import setup_logging
    from radiolens.models import read_model_info
    from radiolens.segment.table import read_mask_table
    from radiolens.train import TrainConfig, train

    setup_logging(0, False)
    torch.set_num_threads(args.threads)
    table = DATA / "covid_chestxray_ieee8023" / "labels.csv"
    pairs = read_mask_table(table)
    masks = masks_from_table(table)
    start_info = read_model_info(args.init)
    start_rec = start_info.validation["labels"]["abnormal"]
    results: dict[str, Any] = {"settings": vars(args), "levers": {}}
    if args.keep:
        previous = json.loads(Path(args.keep).read_text())
        results["levers"].update(previous.get("levers", {}))
    t0 = time.perf_counter()
    results["start"] = {"auroc": start_rec["auroc"], "auroc_ci": start_rec["auroc_ci"],
                        "heat": heat(args.init, pairs, masks),
                        "note": "the starting model as shipped (validation AUROC from its "
                                "model.json)"}
    print(f"start {args.init}: AUROC {start_rec['auroc']:.3f}; heat in lungs "
          f"{results['start']['heat']['all']['mean']:.3f} (uniform "
          f"{results['start']['heat']['all']['uniform']:.3f})", flush=True)
    for name in args.levers.split(","):
        out = Path(args.out) / name
        if out.exists():
            import shutil

            shutil.rmtree(out)
        config = TrainConfig(
            data=str(DATA / "labels.csv"), output=str(out),
            where={"source": "nih_chestxray14_64px,covid_chestxray_ieee8023,figure1_covid,"
                             "actualmed_covid"},
            labels="abnormal", model="densenet121", image_size=args.image_size,
            epochs=args.epochs, batch_size=32, lr=args.lr, warmup_epochs=0.0,
            patience=args.epochs, threshold_method="sensitivity:0.9", limit=args.limit,
            init=args.init, device="cpu", lung_model=args.lung_model, **LEVERS[name])
        t1 = time.perf_counter()
        result = train(config)
        rec = result.validation["labels"]["abnormal"]
        h = heat(str(out), pairs, masks)
        results["levers"][name] = {"settings": LEVERS[name], "auroc": rec["auroc"],
                                   "auroc_ci": rec["auroc_ci"], "heat": h,
                                   "seconds": round(time.perf_counter() - t1, 1)}
        print(f"{name:18s} AUROC {rec['auroc']:.3f} [{rec['auroc_ci'][0]:.3f}, "
              f"{rec['auroc_ci'][1]:.3f}]  heat in lungs {h['all']['mean']:.3f} "
              f"(val {h['val']['mean']:.3f})  {results['levers'][name]['seconds']:.0f} s",
              flush=True)
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "attention_levers.json").write_text(
            json.dumps(results, indent=2) + "\n")
    results["seconds"] = round(time.perf_counter() - t0, 1)
    (HERE / "results" / "attention_levers.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\nlever               AUROC   heat in lungs (all / val)   vs start")
    base = results["start"]["heat"]["all"]["mean"]
    for name, r in results["levers"].items():
        print(f"{name:18s}  {r['auroc']:.3f}   {r['heat']['all']['mean']:.3f} / "
              f"{r['heat']['val']['mean']:.3f}              {r['heat']['all']['mean'] / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
