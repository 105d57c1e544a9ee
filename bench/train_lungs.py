"""Train the shipped lung segmentation model on ../shared/data and ship it.

    .venv/bin/python bench/train_lungs.py --ship                 # U-Net, 24 epochs, 192 px
    .venv/bin/python bench/train_lungs.py --model attention-unet --epochs 8 -o runs/lungs-att
    .venv/bin/python bench/train_lungs.py --ship-only runs/lungs-unet --name lungs-unet

Trains on the 319 human lung masks of ``covid_chestxray_ieee8023`` (302 training / 17
validation images by the table's patient split; COVID-19 and other pneumonia, the masks
include the retrocardiac lung). ``--ship`` writes the weights in fp16 with ``model.json``,
``MODEL_CARD.md`` and the learning curve to ``src/radiolens/models/builtin/NAME`` (``--name``,
default ``lungs``); the shipped model is then scored again from the package (fp16
weights, the path users take).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "covid_chestxray_ieee8023" / "labels.csv"
BUILTIN = ROOT / "src" / "radiolens" / "models" / "builtin"


def ship(run_dir: Path, command: str, name: str = "lungs") -> None:
    """Copy ``run_dir`` to the package as ``builtin:NAME`` with fp16 weights and check the
    copy scores the same."""
    import torch
    from safetensors.torch import load_file, save_file

    from radiolens.cli.main import main as radiolens
    from radiolens.segment.info import read_seg_info, write_seg_info
    from radiolens.segment.train import write_seg_card

    dest = BUILTIN / name
    dest.mkdir(parents=True, exist_ok=True)
    state = load_file(str(run_dir / "model.safetensors"))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v
               for k, v in state.items()}, str(dest / "model.safetensors"),
              metadata={"format": "radiolens-seg-model"})
    info = read_seg_info(run_dir)
    info.training["command"] = command
    info.training["weights"] = "fp16 (trained in fp32)"
    write_seg_info(dest, info)
    for file in ("learning_curve.png", "history.csv"):
        if (run_dir / file).is_file():
            shutil.copy2(run_dir / file, dest / file)
    write_seg_card(dest, info, f"builtin:{name}")
    out = ROOT / "runs" / f"{name}-shipped-eval"
    code = radiolens(["-q", "evaluate-seg", "--checkpoint", f"builtin:{name}", "--data",
                      str(DATA), "--split", "val", "-o", str(out)])
    if code != 0:
        raise SystemExit(f"scoring the shipped model failed (exit {code})")
    shipped = json.loads((out / "summary.json").read_text())
    print(f"shipped to {dest}: validation Dice {shipped['dice']['mean']:.4f} with fp16 weights "
          f"(fp32 run: {info.validation['dice']['mean']:.4f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--model", default="unet")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--image-size", type=int, default=192)
    ap.add_argument("-o", "--output", default=str(ROOT / "runs" / "lungs-unet"))
    ap.add_argument("--ship", action="store_true")
    ap.add_argument("--name", default="lungs", help="ship as builtin:NAME (default lungs)")
    ap.add_argument("--ship-only", metavar="RUN_DIR")
    ap.add_argument("--finish", metavar="RUN_DIR", help="complete a run stopped early (its "
                    "best saved weights are scored and documented), then ship it with --ship")
    args = ap.parse_args()
    command = " ".join([".venv/bin/python", "bench/train_lungs.py", *sys.argv[1:]])
    if args.finish:
        from radiolens.segment.train import finish_seg_run

        summary = finish_seg_run(args.finish)
        print(f"{args.finish}: validation Dice {summary['dice']['mean']:.4f} "
              f"{summary['dice']['ci']}, IoU {summary['iou']['mean']:.4f}, "
              f"HD95 {summary['hd95']['mean']:.1f} px")
        if args.ship:
            ship(Path(args.finish), command, args.name)
        return 0
    if args.ship_only:
        ship(Path(args.ship_only), command, args.name)
        return 0
    from radiolens.cli.main import main as radiolens

    code = radiolens(["train-seg", "--data", args.data, "--model", args.model, "--epochs",
                      str(args.epochs), "--patience", str(args.epochs), "--image-size",
                      str(args.image_size), "-o", args.output])
    if code == 0 and args.ship:
        ship(Path(args.output), command, args.name)
    return code


if __name__ == "__main__":
    sys.exit(main())
