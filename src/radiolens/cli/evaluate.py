"""``radiolens evaluate``: metrics, plots and an HTML report of a model on labelled data."""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from pathlib import Path
from typing import Any

from radiolens.cli.train import _key_value

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate a model on labelled data: metrics.json, plots, report.html",
        description="Score a labelled split with a model and write OUT_DIR/metrics.json "
                    "(AUROC with bootstrap 95%% CI, AUPRC, accuracy, sensitivity, specificity, "
                    "PPV, NPV, F1 at the operating threshold chosen on validation, "
                    "calibration, subgroups), PNG plots, predictions.csv and report.html.")
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR",
                   help="run directory, or builtin:NAME")
    p.add_argument("--data", required=True, metavar="CSV", help="label table (CSV)")
    p.add_argument("--images-root", metavar="DIR")
    p.add_argument("--split", default=None, metavar="NAME",
                   help="rows of this split (default: test when the table has one); 'all' "
                        "for every row")
    p.add_argument("--where", type=_key_value, action="append", metavar="COL=VALUE")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
    p.add_argument("--n-boot", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the confidence intervals (default 1000)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from radiolens.cli._common import progress
    from radiolens.data import read_label_table
    from radiolens.errors import ConfigError, DatasetError, ImageReadError
    from radiolens.evaluate import (
        evaluate_predictions,
        plot_evaluation,
        write_html_report,
        write_metrics_json,
    )
    from radiolens.imaging import read_image
    from radiolens.inference import Predictor

    predictor = Predictor(args.checkpoint, device=args.device,
                          batch_size=args.batch_size).load()
    labels = predictor.labels
    dl = read_label_table(args.data, ",".join(labels), images_root=args.images_root,
                          where=dict(args.where) if args.where else None)
    splits = sorted({str(it.get("split", "")) for it in dl.items} - {""})
    split = args.split
    if split is None:
        if "test" not in splits:
            raise ConfigError(f"{args.data} has no 'test' split (splits: "
                              f"{', '.join(splits) or 'none'}); pass --split NAME or --split "
                              "all, and never evaluate on the data the model was trained on")
        split = "test"
    items = dl.items if split == "all" else [it for it in dl.items if it.get("split") == split]
    if not items:
        raise DatasetError(f"no rows in split {split!r}; splits in the table: "
                           f"{', '.join(splits) or 'none'}")
    if split in ("train", "val"):
        log.warning("evaluating on the %r split: if the model saw these images in training "
                    "(or chose its threshold on them) the figures are optimistic", split)
    kept: list[dict[str, Any]] = []
    batch: list[Any] = []
    probs: list[Any] = []
    bad: list[str] = []
    for it in progress(items, "scoring", "img"):
        try:
            batch.append(predictor.preprocess(read_image(it["image"])))
        except ImageReadError as exc:
            bad.append(str(exc))
            continue
        kept.append(it)
        if len(batch) >= args.batch_size:
            probs.append(predictor.predict_batch(np.stack(batch)))
            batch = []
    if batch:
        probs.append(predictor.predict_batch(np.stack(batch)))
    if bad:
        log.warning("%d images could not be read and were left out:\n  %s", len(bad),
                    "\n  ".join(bad[:20]))
    if not kept:
        raise DatasetError("no image could be read")
    p = np.concatenate(probs)
    y = np.stack([np.asarray(it["label"], dtype=np.float64) for it in kept])
    metadata = {k: [it.get(k, "") for it in kept] for k in ("sex", "age", "view")}
    metrics = evaluate_predictions(y, p, labels, predictor.thresholds, metadata,
                                   n_boot=args.n_boot, case_ids=[it["id"] for it in kept])
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    config = {"checkpoint": str(args.checkpoint), "data": str(args.data), "split": split,
              "where": dict(args.where) if args.where else None, "n_boot": args.n_boot,
              "model": predictor.info_.model_dump(mode="json", include={
                  "architecture", "labels", "thresholds", "threshold_method",
                  "radiolens_version"}),
              "unreadable": len(bad)}
    write_metrics_json(out / "metrics.json", metrics, config)
    plots = plot_evaluation(y, p, labels, metrics, out)
    write_html_report(out / "report.html", metrics, plots,
                      title=f"radiolens evaluation: {args.checkpoint} on {split}")
    with (out / "predictions.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", *[f"{n}_true" for n in labels], *[f"{n}_prob" for n in labels]])
        for it, yt, pp in zip(kept, y, p, strict=True):
            w.writerow([it["id"], *["" if math.isnan(v) else int(v) for v in yt],
                        *[f"{v:.6f}" for v in pp]])
    print(f"{len(kept)} images of split {split!r} scored; wrote {out}/metrics.json, "
          f"report.html and plots", file=sys.stdout)
    for name, rec in metrics["labels"].items():
        ci = rec.get("auroc_ci") or [None, None]
        auc = rec.get("auroc")
        print(f"  {name}: AUROC {'n/a' if auc is None else f'{auc:.3f}'}"
              + ("" if ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")
              + f"; at threshold {rec['threshold']:.3f}: accuracy {_pct(rec.get('accuracy'))},"
              f" sensitivity {_pct(rec.get('sensitivity'))}, specificity "
              f"{_pct(rec.get('specificity'))}")
    return 1 if bad else 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
