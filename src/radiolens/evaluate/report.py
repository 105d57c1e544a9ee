"""Evaluate a multi-label classifier's test predictions and write ``metrics.json``.

``metrics.json`` (format version 1) is a JSON object; rates that are undefined (no case
to divide by, one class only) are ``null``, never ``NaN``::

    {
      "version": 1,                      # format version of this file
      "radiolens_version": "0.1.0",
      "created": "2025-01-01T12:00:00+00:00",
      "config": {...},                   # the resolved run configuration, as given
      "data": {                          # fingerprint of the test data
        "n_cases": 1000, "labels": ["Effusion", ...],
        "case_ids_sha256": "...",        # null when no case ids were given
        "targets_sha256": "...",
        "split": "test"                  # the split evaluated, or null when not given
      },
      "settings": {"n_boot": 1000, "alpha": 0.05, "seed": 0, "n_bins": 10,
                   "confidence_interval": "...", "positive_if": "p >= threshold",
                   "thresholds_chosen_on": "validation split",
                   "thresholds_on_evaluated_cases": false},  # set by `radiolens evaluate`
      "labels": {
        "Effusion": {
          "n": 950, "n_positive": 120, "n_missing": 50, "prevalence": 0.126,
          "auroc": 0.87, "auroc_ci": [0.84, 0.90], "auprc": 0.55, "auprc_ci": [0.49, 0.61],
          "threshold": 0.31,
          "accuracy": 0.81, "sensitivity": 0.90, "specificity": 0.80,
          "ppv": 0.40, "npv": 0.98, "f1": 0.55,
          "confusion": {"tp": 108, "fp": 166, "tn": 664, "fn": 12},
          "calibration": {"ece": 0.03, "brier": 0.09, "n_bins": 10,
                          "curve": [{"lower": 0.0, "upper": 0.1, "n": 400,
                                     "mean_predicted": 0.04, "fraction_positive": 0.03}]},
          "subgroups": {
            "sex": {"F": {"n": 470, "n_positive": 55, "prevalence": 0.117, "auroc": 0.86,
                          "sensitivity": 0.89, "specificity": 0.81}, "M": {...}},
            "age_band": {"18-39": {...}, ...},
            "view": {"AP": {...}, "PA": {...}}
          }
        }
      },
      "macro": {"auroc": 0.85, "auprc": 0.50, "sensitivity": 0.88, "specificity": 0.79,
                "f1": 0.52, "ece": 0.04, "brier": 0.08, "n_labels": 14,
                "n_labels_with_auroc": 14}
    }

The operating thresholds are chosen by the caller on the VALIDATION split (see
:func:`radiolens.evaluate.choose_threshold`) and only applied here; choosing them on the
test split would overstate sensitivity and specificity.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens import __version__
from radiolens._suggest import did_you_mean
from radiolens.errors import ConfigError, InputFormatError
from radiolens.evaluate.metrics import (
    AGE_BANDS,
    EvaluationError,
    age_band,
    auprc,
    auroc,
    bootstrap_ci,
    calibration,
    confusion_at,
)

__all__ = [
    "METRICS_VERSION",
    "SUBGROUP_KEYS",
    "data_fingerprint",
    "evaluate_predictions",
    "read_metrics_json",
    "to_jsonable",
    "write_metrics_json",
]

logger = logging.getLogger(__name__)

#: Format version of ``metrics.json``; raised when a field changes meaning or goes away.
METRICS_VERSION = 1

#: Metadata keys used for subgroups, and the name each subgroup table gets.
SUBGROUP_KEYS: Mapping[str, str] = {"sex": "sex", "age": "age_band", "view": "view"}

_RESERVED = ("version", "radiolens_version", "created", "config")
_MACRO_KEYS = ("auroc", "auprc", "sensitivity", "specificity", "f1")


# ---------------------------------------------------------------------------- JSON


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types: numpy scalars and arrays to Python numbers and
    lists, NaN and infinities to ``None``, paths and enums to strings, tuples and sets to
    lists, dataclasses and pydantic models to dicts."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return [to_jsonable(v) for v in sorted(obj, key=str)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if callable(dump):
        return to_jsonable(dump(mode="json"))
    return str(obj)


# ---------------------------------------------------------------------------- inputs


def _as_matrix(a: npt.ArrayLike, name: str, n_labels: int) -> npt.NDArray[np.float64]:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1 and n_labels == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != n_labels:
        raise EvaluationError(
            f"{name} has shape {arr.shape}; expected (cases, {n_labels}) to match the "
            f"{n_labels} label names, in the same column order")
    return arr


def _check_thresholds(thresholds: Mapping[str, float], labels: Sequence[str]) -> None:
    missing = [lab for lab in labels if lab not in thresholds]
    if missing:
        extra = [k for k in thresholds if k not in labels]
        hint = did_you_mean(missing[0], extra) if extra else ""
        raise ConfigError(
            f"no operating threshold for {', '.join(map(repr, missing))}{hint}; choose one per "
            "label on the validation split with radiolens.evaluate.choose_threshold")
    for lab in labels:
        t = float(thresholds[lab])
        if not 0.0 <= t <= 1.0:
            raise ConfigError(f"threshold for {lab!r} must be within [0, 1], got {t}")


def _group_values(key: str, values: npt.ArrayLike, n: int) -> list[str | None]:
    arr = np.asarray(values, dtype=object).reshape(-1)
    if arr.size != n:
        raise EvaluationError(
            f"metadata[{key!r}] has {arr.size} values for {n} cases; give one value per case, "
            "in the order of y_true (None where unknown)")
    if key == "age":
        return [age_band(v) for v in arr]
    out: list[str | None] = []
    for v in arr:
        if v is None or (isinstance(v, float | np.floating) and math.isnan(v)):
            out.append(None)
        else:
            text = str(v).strip()
            out.append(text or None)
    return out


def _group_order(table: str, names: set[str]) -> list[str]:
    if table == "age_band":
        return sorted(names, key=lambda s: int(s.split("-")[0].rstrip("+")))
    return sorted(names)


def data_fingerprint(y_true: npt.ArrayLike, labels: Sequence[str],
                     case_ids: Sequence[object] | None = None) -> dict[str, Any]:
    """Identify the test data so that runs evaluated on different data can be told apart.

    Case ids are hashed in sorted order, so the order of the cases does not matter; the
    targets are hashed in the same (sorted-id) order, or as given when there are no ids.

    Returns:
        ``{"n_cases", "labels", "case_ids_sha256" (None without ids), "targets_sha256"}``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    ids_hash: str | None = None
    order = np.arange(y.shape[0])
    if case_ids is not None:
        ids = [str(c) for c in case_ids]
        if len(ids) != y.shape[0]:
            raise EvaluationError(
                f"case_ids has {len(ids)} ids for {y.shape[0]} cases; give one id per row of "
                "y_true, in the same order")
        if len(set(ids)) != len(ids):
            logger.warning("case_ids holds %d duplicate ids; each case should appear once",
                           len(ids) - len(set(ids)))
        order = np.asarray(sorted(range(len(ids)), key=ids.__getitem__), dtype=np.intp)
        ids_hash = hashlib.sha256("\n".join(ids[i] for i in order).encode()).hexdigest()
    canon = np.ascontiguousarray(np.where(np.isnan(y), -1.0, y)[order])
    return {
        "n_cases": int(y.shape[0]),
        "labels": [str(lab) for lab in labels],
        "case_ids_sha256": ids_hash,
        "targets_sha256": hashlib.sha256(canon.tobytes()).hexdigest(),
    }


# ---------------------------------------------------------------------------- evaluation


def _subgroup(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64],
              threshold: float) -> dict[str, Any]:
    keep = ~np.isnan(y)
    n, n_pos = int(keep.sum()), int(np.nansum(y))
    conf = confusion_at(y, p, threshold)
    return {
        "n": n, "n_positive": n_pos, "prevalence": n_pos / n if n else None,
        "auroc": auroc(y, p), "sensitivity": conf.sensitivity, "specificity": conf.specificity,
    }


def _evaluate_label(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64], threshold: float,
                    groups: Mapping[str, list[str | None]], n_boot: int, alpha: float,
                    seed: int, n_bins: int) -> dict[str, Any]:
    keep = ~np.isnan(y)
    n, n_pos = int(keep.sum()), int(np.nansum(y))
    conf = confusion_at(y, p, threshold)
    result: dict[str, Any] = {
        "n": n, "n_positive": n_pos, "n_missing": int(y.size - n),
        "prevalence": n_pos / n if n else None,
        "auroc": auroc(y, p), "auroc_ci": list(bootstrap_ci(y, p, "auroc", n_boot, alpha, seed)),
        "auprc": auprc(y, p),
        "auprc_ci": list(bootstrap_ci(y, p, "auprc", n_boot, alpha, seed, warn=False)),
        "threshold": float(threshold),
        "accuracy": conf.accuracy, "sensitivity": conf.sensitivity,
        "specificity": conf.specificity, "ppv": conf.ppv, "npv": conf.npv, "f1": conf.f1,
        "confusion": {"tp": conf.tp, "fp": conf.fp, "tn": conf.tn, "fn": conf.fn},
        "calibration": calibration(y, p, n_bins).to_dict(),
        "subgroups": {},
    }
    for table, values in groups.items():
        names = {v for v in values if v is not None}
        vals = np.asarray(values, dtype=object)
        result["subgroups"][table] = {
            name: _subgroup(y[vals == name], p[vals == name], threshold)
            for name in _group_order(table, names)
        }
    return result


def _mean(values: list[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else None


def evaluate_predictions(
    y_true: npt.ArrayLike,
    y_prob: npt.ArrayLike,
    labels: Sequence[str],
    thresholds: Mapping[str, float],
    metadata: Mapping[str, npt.ArrayLike] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    case_ids: Sequence[object] | None = None,
    alpha: float = 0.05,
    n_bins: int = 10,
    split: str | None = None,
) -> dict[str, Any]:
    """Evaluate test-set predictions: the content of ``metrics.json`` (see the module doc).

    Args:
        y_true: (cases, labels) array of 1 / 0, with NaN for a missing label; a case with
            a NaN label is left out of that label's metrics only.
        y_prob: (cases, labels) predicted probabilities.
        labels: label names, in column order.
        thresholds: operating threshold per label, chosen on the VALIDATION split by the
            caller (:func:`~radiolens.evaluate.choose_threshold`), never on this test data.
        metadata: optional per-case arrays ``sex``, ``age`` (years or DICOM ``"058Y"``)
            and ``view``; each one present gives a subgroup table. Missing values
            (None, NaN, "") are left out of the subgroups. Other keys are ignored.
        n_boot: bootstrap resamples for the AUROC / AUPRC confidence intervals.
        seed: seed of the bootstrap.
        case_ids: optional id per case, hashed into the ``data`` fingerprint so that
            :func:`~radiolens.evaluate.compare_runs` can tell whether runs share test data.
        alpha: 1 - confidence level of the intervals.
        n_bins: equal-width bins for the calibration error and reliability curve.
        split: the name of the split these cases are (``test``, ``val``...), for the
            report's wording; stored as ``data.split``.

    Returns:
        A dict of plain JSON types (no numpy types; NaN written as None).

    Raises:
        EvaluationError: shapes or values are wrong.
        ConfigError: a label has no threshold, or a setting is out of range.
    """
    labels = [str(lab) for lab in labels]
    if len(set(labels)) != len(labels):
        raise EvaluationError("label names must be unique")
    y = _as_matrix(y_true, "y_true", len(labels))
    p = _as_matrix(y_prob, "y_prob", len(labels))
    if y.shape != p.shape:
        raise EvaluationError(
            f"y_true has {y.shape[0]} cases but y_prob has {p.shape[0]}; they must hold the "
            "same cases in the same order")
    _check_thresholds(thresholds, labels)
    n_cases = y.shape[0]

    groups: dict[str, list[str | None]] = {}
    for key, values in (metadata or {}).items():
        if key not in SUBGROUP_KEYS:
            logger.info("metadata %r is not a subgroup key (%s); ignored", key,
                        ", ".join(SUBGROUP_KEYS))
            continue
        if values is not None:
            groups[SUBGROUP_KEYS[key]] = _group_values(key, values, n_cases)

    per_label: dict[str, Any] = {}
    for j, name in enumerate(labels):
        logger.debug("evaluating %s", name)
        per_label[name] = _evaluate_label(y[:, j], p[:, j], float(thresholds[name]), groups,
                                          n_boot, alpha, seed, n_bins)

    macro: dict[str, Any] = {k: _mean([r[k] for r in per_label.values()]) for k in _MACRO_KEYS}
    macro["ece"] = _mean([r["calibration"]["ece"] for r in per_label.values()])
    macro["brier"] = _mean([r["calibration"]["brier"] for r in per_label.values()])
    macro["n_labels"] = len(labels)
    macro["n_labels_with_auroc"] = sum(
        1 for r in per_label.values() if r["auroc"] is not None and math.isfinite(r["auroc"]))

    result = {
        "data": {**data_fingerprint(y, labels, case_ids), "split": split},
        "settings": {
            "n_boot": n_boot, "alpha": alpha, "seed": seed, "n_bins": n_bins,
            "age_bands": [age_band(0), *[age_band(edge) for edge in AGE_BANDS]],
            "confidence_interval": "percentile bootstrap over cases (not stratified by class);"
                                   " resamples with one class skipped",
            "positive_if": "p >= threshold",
            "thresholds_chosen_on": "validation split",
        },
        "labels": per_label,
        "macro": macro,
    }
    out: dict[str, Any] = to_jsonable(result)
    return out


# ---------------------------------------------------------------------------- files


def write_metrics_json(path: str | Path, metrics: Mapping[str, Any],
                       config: Any = None) -> Path:
    """Write ``metrics`` with a ``version`` field and the resolved ``config`` as JSON.

    Args:
        path: the file to write, or an existing directory to write ``metrics.json`` into.
        metrics: the dict from :func:`evaluate_predictions`.
        config: the resolved run configuration (a mapping, dataclass or pydantic model).

    Returns:
        The path written. The file is replaced atomically and never contains ``NaN``.
    """
    target = Path(path)
    if target.is_dir():
        target = target / "metrics.json"
    doc: dict[str, Any] = {
        "version": METRICS_VERSION,
        "radiolens_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": to_jsonable(config) if config is not None else {},
    }
    doc.update({k: v for k, v in metrics.items() if k not in _RESERVED})
    text = json.dumps(to_jsonable(doc), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    _write_atomic(target, text)
    logger.info("wrote %s", target)
    return target


def _write_atomic(target: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``target``, then rename it into place, so
    a reader never sees a half-written file (permissions follow the umask)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_metrics_json(path: str | Path) -> dict[str, Any]:
    """Read a ``metrics.json`` written by :func:`write_metrics_json`.

    Raises:
        InputFormatError: the file is missing, not JSON, or of a newer format version.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.json"
    if not p.is_file():
        raise InputFormatError("no such file; pass a metrics.json or the run directory "
                               "that holds one", str(p))
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"not valid JSON ({exc})", str(p)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
        raise InputFormatError("not a radiolens metrics file (no 'version' field)", str(p))
    if doc["version"] > METRICS_VERSION:
        raise InputFormatError(
            f"metrics format version {doc['version']} is newer than this radiolens reads "
            f"({METRICS_VERSION}); upgrade radiolens", str(p))
    return doc
