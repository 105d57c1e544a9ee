"""``radiolens import-weights``: turn published weights into a radiolens run directory."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "import-weights", help="convert published checkpoints (CheXNet) to a run directory",
        description="Convert a published checkpoint into a radiolens run directory "
                    "(model.safetensors + model.json) that can be evaluated, served and "
                    "compared like any other model. Supported: chexnet (the DenseNet-121 "
                    "state dict with keys like module.densenet121.features..., 14 outputs in "
                    "the ChestX-ray14 order, ImageNet normalisation, 224 px).")
    p.add_argument("kind", choices=["chexnet"])
    p.add_argument("path", metavar="PATH", help="the checkpoint file (.pth.tar, .pth, .pt)")
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR")
    p.add_argument("--half", action="store_true", help="store the weights in fp16")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.models import convert_chexnet

    info = convert_chexnet(args.path, args.output, half=args.half)
    out = args.output
    print(f"wrote {out}: {info.architecture}, {len(info.labels)} labels "
          f"({', '.join(info.labels)}), input {info.preprocessing.image_size} px, "
          f"{info.preprocessing.channels} channel(s)")
    print("the operating thresholds are 0.5 until you choose them on your own validation "
          f"data: `radiolens thresholds --checkpoint {out} --data YOUR.csv --split val`; "
          f"then evaluate it: `radiolens evaluate --checkpoint {out} --data YOUR.csv -o OUT`")
    return 0
