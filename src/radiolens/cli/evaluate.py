"""``radiolens evaluate``: metrics, plots and an HTML report of a model on labelled data."""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from radiolens.cli._common import add_scoring_options, percent

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate a model on labelled data: metrics.json, plots, report.html",
        description="Score a labelled split with a model and write OUT_DIR/metrics.json "
                    "(AUROC with bootstrap 95% CI, AUPRC, accuracy, sensitivity, specificity, "
                    "PPV, NPV, F1 at the operating threshold chosen on validation, "
                    "calibration, subgroups), PNG plots, predictions.csv and report.html.")
    add_scoring_options(p, checkpoint_help="run directory, or builtin:NAME",
                        split_help="rows of this split (default: test when the table has "
                                   "one); 'all' for every row")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
    p.add_argument("--lung-masks", choices=["auto", "table", "predicted", "none"],
                   default="auto", help="heat in lungs (Grad-CAM mass inside the lungs): "
                   "'table' uses the table's mask column, 'predicted' segments every image "
                   "with --lung-model, 'auto' (default) the table's masks when it has them")
    p.add_argument("--lung-model", default="builtin:lungs", metavar="RUN_DIR",
                   help="segmentation model for --lung-masks predicted")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens.cli._scoring import score_from_args, subgroup_metadata
    from radiolens.evaluate import (
        evaluate_predictions,
        plot_evaluation,
        write_html_report,
        write_metrics_json,
    )

    if args.split in ("train", "val"):
        log.warning("evaluating on the %r split: if the model saw these images in training "
                    "(or chose its threshold on them) the figures are optimistic", args.split)
    predictor, scored = score_from_args(
        args, default_split="test",
        hint=", and never evaluate on the data the model was trained on")
    labels = predictor.labels
    split, kept, y, p, bad = scored.split, scored.items, scored.y, scored.p, scored.unreadable
    metrics = evaluate_predictions(y, p, labels, predictor.thresholds, subgroup_metadata(kept),
                                   n_boot=args.n_boot, case_ids=[it["id"] for it in kept],
                                   split=split)
    same = _note_threshold_provenance(metrics, predictor.info_.validation,
                                      predictor.info_.threshold_method)
    if same:
        log.warning("the thresholds were chosen on these same %d cases: the figures at the "
                    "threshold are optimistic; evaluate on a separate test split", len(kept))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    config = {"checkpoint": str(args.checkpoint), "data": str(args.data), "split": split,
              "where": dict(args.where) if args.where else None, "n_boot": args.n_boot,
              "model": predictor.info_.model_dump(mode="json", include={
                  "architecture", "labels", "thresholds", "threshold_method",
                  "radiolens_version"}),
              "backend": getattr(predictor, "backend_", "torch"),
              "unreadable": len(bad)}
    heat = _heat_in_lungs(args, predictor, kept, y)
    if heat is not None:
        metrics["heat_in_lungs"] = heat
    write_metrics_json(out / "metrics.json", metrics, config)
    plots = plot_evaluation(y, p, labels, metrics, out)
    write_html_report(out / "report.html", metrics, plots,
                      title=f"radiolens evaluation: {args.checkpoint} on {split}",
                      figures=_run_figures(args.checkpoint))
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
              + f"; at threshold {rec['threshold']:.3f}: accuracy {percent(rec.get('accuracy'))},"
              f" sensitivity {percent(rec.get('sensitivity'))}, specificity "
              f"{percent(rec.get('specificity'))}")
    if heat is not None:
        for name, rec in heat["labels"].items():
            if rec["mean"] is None:
                continue
            lo, hi = rec["ci"]
            ci = "" if lo is None else f" [{lo:.3f}, {hi:.3f}]"
            print(f"  {name}: heat in lungs {rec['mean']:.3f}{ci} over {rec['n']} images "
                  f"({heat['masks']} masks; a uniform map scores {heat['uniform']:.3f})")
    return 1 if bad else 0


def _heat_in_lungs(args: argparse.Namespace, predictor: Any, kept: list[dict[str, Any]],
                   y: Any) -> dict[str, Any] | None:
    """Heat in lungs over the scored images, per label, or None when not asked/possible."""
    from radiolens.cli._common import progress
    from radiolens.explain.measure import masks_from_table, measure_heat_in_lungs

    mode = args.lung_masks
    if mode == "none":
        return None
    masks = masks_from_table(args.data, args.images_root) if mode in ("auto", "table") else {}
    if mode == "table" and not masks:
        from radiolens.errors import ConfigError

        raise ConfigError(f"{args.data} has no mask column with lung masks; use "
                          "--lung-masks predicted to segment the images with --lung-model")
    segmenter = None
    if mode == "predicted":
        from radiolens.segment import LungSegmenter

        segmenter = LungSegmenter(args.lung_model, device=args.device).load()
    images = [str(it["image"]) for it in kept]
    if segmenter is None and not any(str(Path(i).absolute()) in masks for i in images):
        return None
    positives: dict[str, Sequence[bool]] = {name: [bool(v == 1) for v in y[:, j]]
                 for j, name in enumerate(predictor.labels)}
    result = measure_heat_in_lungs(
        predictor, images, masks=masks, segmenter=segmenter, positives=positives,
        progress=lambda it: progress(it, "heat in lungs", "img"), n_boot=args.n_boot)
    return result


def _note_threshold_provenance(metrics: dict[str, Any], validation: dict[str, Any],
                               threshold_method: str) -> bool:
    """Record in ``metrics`` where the thresholds were chosen; True when on these cases.

    The model's ``validation`` metrics fingerprint the cases its thresholds were chosen
    on; the same fingerprint here means the report grades the model on its tuning data.
    """
    settings = metrics["settings"]
    chosen = validation.get("settings", {}).get("thresholds_chosen_on") or threshold_method
    ref = validation.get("data", {}).get("case_ids_sha256")
    same = ref is not None and ref == metrics["data"].get("case_ids_sha256")
    settings["thresholds_chosen_on"] = chosen or "unknown data (0.5 unless set)"
    settings["thresholds_on_evaluated_cases"] = same
    return same


def _run_figures(checkpoint: str) -> dict[str, Path]:
    """The run directory's learning curve, when training wrote one."""
    from radiolens.models import resolve_run_dir

    curve = resolve_run_dir(checkpoint) / "learning_curve.png"
    if not curve.is_file():
        return {}
    return {"learning curve (loss and validation AUROC per epoch)": curve}
