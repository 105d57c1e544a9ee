"""``radiolens train``: train a classifier and write a run directory."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import Any

from radiolens.cli._common import key_value, percent

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train a CNN classifier (binary or multi-label) on labelled radiographs",
        description="Train a classifier and write RUN_DIR (model.safetensors + model.json, "
                    "history.csv, config.yaml). Flags override a --config YAML file with the "
                    "same field names. Splits are by patient; blank labels are masked out.")
    p.add_argument("--config", metavar="YAML", help="training configuration file")
    p.add_argument("--data", metavar="CSV|DIR", help="label table (CSV with an 'image' column),"
                   " a folder per class, a NIH Data_Entry CSV or a CheXpert CSV")
    p.add_argument("-o", "--output", metavar="RUN_DIR", help="run directory to write")
    p.add_argument("--data-format", choices=["table", "folders", "nih", "chexpert",
                                             "report-labels"])
    p.add_argument("--images-root", metavar="DIR",
                   help="folder the image paths are relative to (default: the CSV's folder)")
    p.add_argument("--report-labels", metavar="CSV",
                   help="labels from `radiolens label`, joined to --data by id")
    p.add_argument("--where", type=key_value, action="append", metavar="COL=VALUE",
                   help="keep rows where COL equals VALUE (comma-separate several values); "
                        "repeatable, e.g. --where source=kermany_pneumonia")
    p.add_argument("--labels", metavar="PRESET|COL,COL",
                   help="pneumonia, normal, abnormal, nih14, or label columns (default "
                        "pneumonia)")
    p.add_argument("--uncertain", choices=["ignore", "zeros", "ones"],
                   help="policy for uncertain (-1) labels (default ignore: masked out)")
    p.add_argument("--model", metavar="NAME", help="densenet121 (default), resnet18, resnet50,"
                   " efficientnet-b0, small-vgg")
    p.add_argument("--image-size", type=int, metavar="N")
    p.add_argument("--epochs", type=int, metavar="N")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--lr", type=float, metavar="X")
    p.add_argument("--weight-decay", type=float, metavar="X")
    p.add_argument("--warmup-epochs", type=float, metavar="X")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-fraction", type=float, metavar="X",
                   help="fraction of patients for validation when the table has no split")
    p.add_argument("--init", metavar="WEIGHTS", help="local pretrained weights (torchvision "
                   "DenseNet-121 or CheXNet), or a radiolens run directory / builtin:NAME "
                   "to fine-tune; default: from scratch")
    p.add_argument("--freeze-backbone", action="store_true", default=None)
    p.add_argument("--imbalance", choices=["pos-weight", "sampler", "none"])
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    p.add_argument("--patience", type=int, metavar="N",
                   help="stop after N epochs without a better validation AUROC")
    p.add_argument("--threshold-method", metavar="M", help="operating threshold chosen on "
                   "validation: youden, f1, sensitivity:0.95, specificity:0.9, fixed:0.5")
    p.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda")
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                   help="train in fp32 (bf16 autocast is on by default where the GPU or CPU "
                   "computes bf16 natively)")
    p.add_argument("--workers", type=int, metavar="N", help="data loader workers (GPU only)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="use at most N training images (validation keeps all its images)")
    p.add_argument("--limit-val", type=int, metavar="N",
                   help="use at most N validation images (default: all)")
    p.add_argument("--half", action="store_true", default=None,
                   help="store the weights in fp16 (half the size)")
    p.add_argument("--skip-unreadable", action="store_true", default=None,
                   help="leave unreadable images out (listed) instead of stopping")
    p.add_argument("--skip-missing", action="store_true", default=None,
                   help="leave out rows whose image file does not exist (counted) instead "
                        "of stopping")
    p.add_argument("--crop", choices=["none", "lungs"], help="lungs: crop every image to "
                   "its lung field (segmented with --lung-model), here and at inference")
    p.add_argument("--outside-lungs", choices=["keep", "dim"], help="dim: darken the pixels "
                   "outside the lungs (by --dim-factor), here and at inference")
    p.add_argument("--dim-factor", type=float, metavar="X", help="default 0.3")
    p.add_argument("--lung-model", metavar="RUN_DIR", help="lung segmentation model for "
                   "--crop/--outside-lungs/--attention-penalty (default builtin:lungs)")
    p.add_argument("--attention-penalty", type=float, metavar="X", help="weight of a loss "
                   "term on the class activation map outside the lungs (default 0: off)")
    p.add_argument("--shortcut-augment", action="store_true", default=None,
                   help="augmentation that breaks border and marker shortcuts")
    p.add_argument("--ema", type=float, metavar="DECAY", help="validate and keep an "
                   "exponential moving average of the weights (e.g. 0.99; default 0: off): "
                   "steadier epochs, often a better model")
    p.add_argument("--tensorboard", action="store_true", default=None)
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR")
    p.set_defaults(run=run)


FIELDS = ("data", "output", "data_format", "images_root", "report_labels", "labels",
          "uncertain", "model", "image_size", "epochs", "batch_size", "lr", "weight_decay",
          "warmup_epochs", "seed", "val_fraction", "init", "freeze_backbone", "imbalance",
          "augment", "patience", "threshold_method", "device", "amp", "workers", "limit",
          "limit_val", "half", "skip_unreadable", "skip_missing", "tensorboard", "crop",
          "outside_lungs", "dim_factor", "lung_model", "attention_penalty",
          "shortcut_augment", "ema")


def run(args: argparse.Namespace) -> int:
    from radiolens.errors import ConfigError
    from radiolens.train import load_train_config, train

    overrides = {name: getattr(args, name) for name in FIELDS}
    if args.where:
        overrides["where"] = dict(args.where)
    if args.config is None and (args.data is None or args.output is None):
        raise ConfigError("give --data and -o RUN_DIR (or a --config file that sets them)")
    config = load_train_config(args.config, overrides)
    result = train(config, resume=args.resume, progress=sys.stderr.isatty())
    macro = result.validation.get("macro", {})
    print(f"run directory: {result.run_dir}")
    print(f"best epoch {result.best_epoch} of {result.epochs_run}"
          f"{' (stopped early)' if result.stopped_early else ''}; "
          f"validation AUROC {_auroc(result.best_auroc)}; "
          f"{result.train_images_per_s:.1f} training images/s; {result.seconds:.0f} s")
    for name, rec in result.validation.get("labels", {}).items():
        ci = rec.get("auroc_ci") or [None, None]
        auc = rec.get("auroc")
        auc_s = "n/a" if auc is None else f"{auc:.3f}"
        ci_s = "" if ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
        sens, spec = rec.get("sensitivity"), rec.get("specificity")
        print(f"  {name}: AUROC {auc_s}{ci_s}; threshold {rec.get('threshold', 0):.3f}: "
              f"sensitivity {percent(sens)}, specificity {percent(spec)}")
    if macro.get("auroc") is not None and len(result.validation.get("labels", {})) > 1:
        print(f"  mean AUROC {macro['auroc']:.3f}")
    return 0


def _auroc(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "n/a"
