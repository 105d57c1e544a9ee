"""Model cards: what a model is for, what it was trained on, how well it did, and its limits.

The card is rendered from ``model.json`` (data counts, preprocessing, thresholds,
validation metrics with CIs, calibration, subgroups) plus an optional ``card.yaml`` in the
run directory with the prose a person must write: ``intended_use``, ``out_of_scope``,
``failure_modes`` (lists of strings) and ``data_sources`` (name, count, licence).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from radiolens import DISCLAIMER
from radiolens.errors import CheckpointError
from radiolens.models.info import ModelInfo, read_model_info, resolve_run_dir

__all__ = ["CARD_FILE", "read_card_text", "render_model_card"]

CARD_FILE = "card.yaml"

_DEFAULT_USE = [
    "Triage support: order a reading worklist so that likely-positive studies are read "
    "sooner, and draft a preliminary report for a radiologist to accept or correct.",
]
_DEFAULT_MISUSE = [
    "Diagnosis without a radiologist, or ruling a study out as normal without one.",
    "Populations, views or devices unlike the training data (see Training data).",
]


def read_card_text(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The hand-written part of a card (``card.yaml``), or an empty dict."""
    path = Path(run_dir) / CARD_FILE
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path}: a model card file must be a mapping")
    return doc


def _num(x: Any, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def _ci(rec: dict[str, Any], key: str, pct: bool = False) -> str:
    ci = rec.get(f"{key}_ci")
    if not ci or ci[0] is None:
        return ""
    return f" [{_num(ci[0], pct)}, {_num(ci[1], pct)}]"


def _bullets(items: Any) -> list[str]:
    return [f"- {item}" for item in (items or [])]


def render_model_card(ref: str | os.PathLike[str], name: str | None = None) -> str:
    """Render the Markdown model card of a run directory or ``builtin:NAME``."""
    folder = resolve_run_dir(ref)
    info: ModelInfo = read_model_info(folder)
    text = read_card_text(folder)
    title = name or str(ref)
    tr = info.training
    lines = [f"# Model card: {title}", "",
             f"> {DISCLAIMER}", "",
             f"{text.get('summary', '')}".strip(), "",
             "## Model", "",
             f"- Architecture: {info.architecture} ({info.task}, outputs: "
             f"{', '.join(info.labels)})",
             f"- radiolens format version {info.version}, made with radiolens "
             f"{info.radiolens_version} on {info.created:%Y-%m-%d}",
             f"- Initialisation: {tr.get('init') or 'from scratch (random weights)'}",
             "", "## Intended use", "", *_bullets(text.get("intended_use") or _DEFAULT_USE),
             "", "## Out of scope and misuse", "",
             *_bullets(text.get("out_of_scope") or _DEFAULT_MISUSE), "",
             "## Training data", ""]
    for src in text.get("data_sources", []):
        lines.append(f"- {src.get('name')}: {src.get('images', '?')} images; licence: "
                     f"{src.get('license', 'see source')}")
    for part in ("train", "val"):
        s = tr.get(part)
        if s:
            pos = ", ".join(f"{k} {v}" for k, v in s.get("positives", {}).items())
            neg = ", ".join(f"{k} {v}" for k, v in s.get("negatives", {}).items())
            lines.append(f"- {part}: {s.get('images')} images from {s.get('patients')} "
                         f"patients (positive: {pos}; negative: {neg})")
    if tr.get("where"):
        lines.append(f"- rows selected with {tr['where']} from `{tr.get('data')}`")
    lines += ["- Split by patient (no patient in both training and validation).", "",
              "## Preprocessing", "",
              f"- Greyscale in [0, 1] (DICOM: modality and VOI LUT, MONOCHROME1 inverted), "
              f"resized to {info.preprocessing.image_size}x{info.preprocessing.image_size} "
              f"(aspect ratio not kept), normalised with mean {info.preprocessing.mean} and "
              f"std {info.preprocessing.std}.", ""]
    if tr:
        lines += ["## Training", "",
                  f"- {tr.get('epochs_run')} epochs (best {tr.get('best_epoch')}), "
                  f"{tr.get('wall_seconds')} s on {tr.get('device')} "
                  f"({tr.get('train_images_per_s')} training images/s)", ""]
        if text.get("command"):
            lines += ["```", str(text["command"]).strip(), "```", ""]
    val = info.validation
    lines += ["## Validation metrics (patient-level validation split)", "",
              "Confidence intervals: 95% percentile bootstrap over cases. The validation "
              "split also chose the thresholds, so these figures are optimistic; an "
              "independent test set is the honest measure.", "",
              "| label | AUROC [95% CI] | AUPRC | threshold | sensitivity | specificity | "
              "accuracy | ECE | Brier |", "|---|---|---|---|---|---|---|---|---|"]
    for label, rec in (val.get("labels") or {}).items():
        cal = rec.get("calibration") or {}
        lines.append(f"| {label} | {_num(rec.get('auroc'))}{_ci(rec, 'auroc')} | "
                     f"{_num(rec.get('auprc'))} | {_num(rec.get('threshold'))} | "
                     f"{_num(rec.get('sensitivity'), True)} | "
                     f"{_num(rec.get('specificity'), True)} | "
                     f"{_num(rec.get('accuracy'), True)} | {_num(cal.get('ece'))} | "
                     f"{_num(cal.get('brier'))} |")
    lines += ["", "## Operating thresholds", "",
              f"Chosen by {info.threshold_method or 'default 0.5'}. A study is flagged when "
              "a probability is at or above its threshold. Urgency (worklist order): "
              + (", ".join(f"{k} {v}" for k, v in info.urgency.items()) or "default") + ".",
              ""]
    if info.int8 is not None:
        q = info.int8
        lines += ["## int8 model (fast CPU scoring)", "",
                  f"{'Used' if q.accepted else 'Refused'}: quantized with {q.tool or 'NNCF'}, "
                  f"calibrated on {q.calibration_images} images of split {q.split!r}; on "
                  f"{q.images} images the largest AUROC drop against fp32 is "
                  f"{q.max_auroc_drop:+.4f} (limit {q.limit}), and {q.calls_changed} calls "
                  "changed at the operating thresholds. `--precision fp32` scores without it.",
                  ""]
    config = tr.get("config") or {}
    if text.get("attention") or config.get("attention_penalty") or config.get("crop") == "lungs":
        levers = [f"{name} {config[key]}" for key, name in (
            ("crop", "crop"), ("outside_lungs", "outside the lungs"),
            ("attention_penalty", "attention penalty")) if config.get(key) not in
            (None, "none", "keep", 0, 0.0)]
        lines += ["## Where it looks", "",
                  *_bullets([f"Trained with {', '.join(levers)} (lung masks from "
                             f"{config.get('lung_model', 'builtin:lungs')})."] if levers
                            else []),
                  *_bullets(text.get("attention") or []), ""]
    sub_lines: list[str] = []
    for label, rec in (val.get("labels") or {}).items():
        for table, groups in (rec.get("subgroups") or {}).items():
            for group, g in groups.items():
                sub_lines.append(f"| {label} | {table} | {group} | {g.get('n')} | "
                                 f"{_num(g.get('auroc'))} | {_num(g.get('sensitivity'), True)}"
                                 f" | {_num(g.get('specificity'), True)} |")
    lines += ["## Subgroups", ""]
    if sub_lines:
        lines += ["| label | by | group | n | AUROC | sensitivity | specificity |",
                  "|---|---|---|---|---|---|---|", *sub_lines, ""]
    else:
        lines += ["The training data carry no sex, age or view metadata, so no subgroup "
                  "metrics could be computed: performance across subgroups is unknown.", ""]
    lines += ["## Known failure modes and limits", "",
              *_bullets(text.get("failure_modes") or [
                  "Not validated on an external test set by radiolens."]), "",
              "## Responsibility", "",
              "This model assists a radiologist and never replaces one. Every output of "
              "radiolens is a draft for review.", ""]
    return "\n".join(line for line in lines if line is not None).replace("\n\n\n", "\n\n")
