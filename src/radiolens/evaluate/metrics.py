"""Binary classification metrics for one label: AUROC, AUPRC, bootstrap CIs, operating
thresholds, confusion counts and calibration.

Every function takes a 1-D array of true labels ``y`` (``1``, ``0``, or ``NaN`` for a
missing label) and a 1-D array of predicted probabilities ``p``. Cases whose label is
``NaN`` are dropped before anything is computed. A case is predicted positive when
``p >= threshold``.

Example:
    >>> import numpy as np
    >>> from radiolens.evaluate import auroc, choose_threshold, confusion_at
    >>> y = np.array([0, 0, 1, 1, np.nan])
    >>> p = np.array([0.1, 0.4, 0.35, 0.8, 0.5])
    >>> auroc(y, p)
    0.75
    >>> t = choose_threshold(y, p, "sensitivity:1.0")
    >>> confusion_at(y, p, t).sensitivity
    1.0
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens._suggest import choices_hint, did_you_mean
from radiolens.errors import ConfigError, MissingDependencyError, RadiolensError

try:
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )
except ImportError as exc:  # pragma: no cover - depends on the install
    raise MissingDependencyError("scikit-learn", "train") from exc

__all__ = [
    "AGE_BANDS",
    "THRESHOLD_METHODS",
    "Calibration",
    "Confusion",
    "EvaluationError",
    "age_band",
    "auprc",
    "auroc",
    "bootstrap_ci",
    "calibration",
    "check_threshold_method",
    "choose_threshold",
    "confusion_at",
]

logger = logging.getLogger(__name__)

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]
Metric = Callable[[FloatArray, FloatArray], float]

#: Lower edges (years) of the age bands after the first: 0-17, 18-39, 40-59, 60-79, 80+.
AGE_BANDS: tuple[int, ...] = (18, 40, 60, 80)

#: Threshold rules :func:`choose_threshold` accepts (``name`` or ``name:value``).
THRESHOLD_METHODS: tuple[str, ...] = ("youden", "f1", "sensitivity", "specificity", "fixed")

# Elements of one bootstrap chunk (resamples x cases): bounds memory on large test sets.
_CHUNK_ELEMENTS = 2_000_000


class EvaluationError(RadiolensError, ValueError):
    """Labels or predictions cannot be evaluated (bad shape, values, or a missing class)."""


# ---------------------------------------------------------------------------- inputs


def _clean(y: ArrayLike, p: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Check one label's ``y``/``p`` and drop the cases whose label is NaN."""
    ya = np.asarray(y, dtype=np.float64)
    pa = np.asarray(p, dtype=np.float64)
    if ya.ndim != 1 or pa.ndim != 1:
        raise EvaluationError(
            f"expected 1-D arrays for one label, got shapes {ya.shape} and {pa.shape}; "
            "pass one column at a time, e.g. y_true[:, j] and y_prob[:, j]")
    if ya.shape != pa.shape:
        raise EvaluationError(
            f"labels and probabilities differ in length ({ya.size} vs {pa.size}); "
            "they must hold the same cases in the same order")
    keep = ~np.isnan(ya)
    ya, pa = ya[keep], pa[keep]
    if not np.isin(ya, (0.0, 1.0)).all():
        bad = np.unique(ya[~np.isin(ya, (0.0, 1.0))])[:5].tolist()
        raise EvaluationError(
            f"labels must be 1, 0 or NaN, found {bad}; map uncertain (-1) labels to 0, 1 "
            "or NaN before evaluating")
    if pa.size and (not np.isfinite(pa).all() or pa.min() < 0.0 or pa.max() > 1.0):
        raise EvaluationError(
            "probabilities must be finite and within [0, 1]; if these are logits, apply a "
            "sigmoid first")
    return ya, pa


def _both_classes(y: FloatArray) -> bool:
    return bool(y.size) and 0.0 < float(y.sum()) < y.size


# ---------------------------------------------------------------------------- ranking


def auroc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``).

    Returns:
        The AUROC, or NaN when ``y`` (after dropping NaN labels) lacks either class.
    """
    ya, pa = _clean(y, p)
    if not _both_classes(ya):
        return math.nan
    return float(roc_auc_score(ya.astype(np.int8), pa))


def auprc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision
    (``sklearn.metrics.average_precision_score``, no interpolation).

    Returns:
        The average precision, or NaN when ``y`` has no positive case.
    """
    ya, pa = _clean(y, p)
    if not ya.size or ya.sum() == 0:
        return math.nan
    return float(average_precision_score(ya.astype(np.int8), pa))


# ---------------------------------------------------------------------------- bootstrap


def _grouped_counts(idx: npt.NDArray[np.intp], y: FloatArray, group: npt.NDArray[np.intp],
                    n_groups: int) -> tuple[FloatArray, FloatArray]:
    """Positive and negative counts per (resample, score group) for resample indices ``idx``."""
    n_res = idx.shape[0]
    keys = np.arange(n_res, dtype=np.intp)[:, None] * n_groups + group[idx]
    is_pos = y[idx] == 1.0
    size = n_res * n_groups
    pos = np.bincount(keys[is_pos], minlength=size).reshape(n_res, n_groups)
    neg = np.bincount(keys[~is_pos], minlength=size).reshape(n_res, n_groups)
    return pos.astype(np.float64), neg.astype(np.float64)


def _auroc_resampled(pos: FloatArray, neg: FloatArray) -> FloatArray:
    """AUROC per resample from counts per ascending score group (ties count one half)."""
    neg_below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / (n_pos * n_neg)


def _auprc_resampled(pos: FloatArray, neg: FloatArray) -> FloatArray:
    """Average precision per resample from counts per ascending score group."""
    pos, neg = pos[:, ::-1], neg[:, ::-1]  # thresholds from the highest score down
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    called = tp + fp
    precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
    n_pos = pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * precision).sum(axis=1) / n_pos


_VECTORISED: dict[str, Callable[[FloatArray, FloatArray], FloatArray]] = {
    "auroc": _auroc_resampled,
    "auprc": _auprc_resampled,
}


def _resolve_metric(metric: str | Metric) -> tuple[str | None, Metric]:
    if isinstance(metric, str):
        named: dict[str, Metric] = {"auroc": auroc, "auprc": auprc}
        if metric not in named:
            raise ConfigError(
                f"unknown metric {metric!r}{did_you_mean(metric, named)}; {choices_hint(named)}"
                ", or pass a function f(y, p) -> float")
        return metric, named[metric]
    if metric is auroc:
        return "auroc", auroc
    if metric is auprc:
        return "auprc", auprc
    return None, metric


def _resample_indices(rng: np.random.Generator, y: FloatArray, n_boot: int,
                      stratified: bool) -> Iterator[npt.NDArray[np.intp]]:
    """Yield chunks of resample indices, shape (chunk, n), n_boot rows in all."""
    n = y.size
    chunk = max(1, min(n_boot, _CHUNK_ELEMENTS // max(n, 1)))
    pos_idx, neg_idx = np.flatnonzero(y == 1.0), np.flatnonzero(y == 0.0)
    done = 0
    while done < n_boot:
        m = min(chunk, n_boot - done)
        if stratified:
            idx = np.concatenate(
                [rng.choice(pos_idx, size=(m, pos_idx.size)),
                 rng.choice(neg_idx, size=(m, neg_idx.size))], axis=1)
        else:
            idx = rng.integers(0, n, size=(m, n), dtype=np.intp)
        done += m
        yield idx


def _bootstrap_stats(y: FloatArray, p: FloatArray, metric: str | Metric, n_boot: int,
                     seed: int, stratified: bool = False) -> FloatArray:
    """The metric on each of ``n_boot`` resamples (NaN where a resample has one class)."""
    name, func = _resolve_metric(metric)
    rng = np.random.default_rng(seed)
    stats: list[FloatArray] = []
    if name is not None:
        uniq, group = np.unique(p, return_inverse=True)
        group = group.reshape(-1).astype(np.intp)
        for idx in _resample_indices(rng, y, n_boot, stratified):
            pos, neg = _grouped_counts(idx, y, group, uniq.size)
            stat = _VECTORISED[name](pos, neg)
            stat[(pos.sum(axis=1) == 0) | (neg.sum(axis=1) == 0)] = np.nan  # one class
            stats.append(stat)
        return np.concatenate(stats)
    values: list[float] = []
    for idx in _resample_indices(rng, y, n_boot, stratified):
        for row in idx:
            yb = y[row]
            values.append(float(func(yb, p[row])) if _both_classes(yb) else math.nan)
    return np.asarray(values, dtype=np.float64)


def bootstrap_ci(y: ArrayLike, p: ArrayLike, metric: str | Metric = "auroc",
                 n_boot: int = 1000, alpha: float = 0.05, seed: int = 0, *,
                 stratified: bool = False, warn: bool = True) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric`` over resampled cases.

    By default the cases are resampled with replacement as a whole (not stratified by
    class), so the interval also reflects the sampling variation of the prevalence.
    Resamples that hold only one class are skipped. ``stratified=True`` instead
    resamples the positives and the negatives separately, keeping their counts fixed.

    AUROC and AUPRC (``"auroc"``/``"auprc"`` or the :func:`auroc`/:func:`auprc`
    functions) are computed for all resamples at once from tie-aware counts, so 1,000
    resamples of 1,000 cases take a fraction of a second; any other ``f(y, p) -> float``
    is called once per resample.

    Args:
        y: true labels (1, 0, NaN for missing; NaN cases are dropped).
        p: predicted probabilities.
        metric: ``"auroc"``, ``"auprc"`` or a function ``f(y, p) -> float``.
        n_boot: number of resamples.
        alpha: 1 - confidence level (0.05 gives a 95 % interval).
        seed: seed of the resampling; the same seed gives the same interval.
        stratified: resample positives and negatives separately.
        warn: log a warning when many resamples held one class (off for the second
            interval over the same cases, so the warning appears once).

    Returns:
        ``(low, high)``, or ``(nan, nan)`` when no resample holds both classes.
    """
    if n_boot < 1:
        raise ConfigError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be between 0 and 1 (0.05 for a 95% CI), got {alpha}")
    ya, pa = _clean(y, p)
    if not _both_classes(ya):
        return math.nan, math.nan
    stats = _bootstrap_stats(ya, pa, metric, n_boot, seed, stratified)
    valid = stats[np.isfinite(stats)]
    skipped = stats.size - valid.size
    if skipped:
        logger.debug("bootstrap: skipped %d of %d resamples with one class", skipped, n_boot)
    if warn and skipped > n_boot // 10:
        logger.warning(
            "bootstrap: %d of %d resamples held only one class (%d positives in %d cases); "
            "the interval is unreliable", skipped, n_boot, int(ya.sum()), ya.size)
    if not valid.size:
        return math.nan, math.nan
    lo, hi = np.percentile(valid, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------- thresholds


_METHOD = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?::\s*([0-9.eE+-]+))?\s*$")


def _parse_method(method: str) -> tuple[str, float | None]:
    m = _METHOD.match(method.lower())
    name = m.group(1) if m else method
    if not m or name not in THRESHOLD_METHODS:
        raise ConfigError(
            f"unknown threshold method {method!r}{did_you_mean(name, THRESHOLD_METHODS)}; "
            "choose from: youden, f1, sensitivity:<0-1>, specificity:<0-1>, fixed:<0-1>")
    value = None
    if m.group(2) is not None:
        try:
            value = float(m.group(2))
        except ValueError:
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"threshold method {method!r}: the value must be within [0, 1]")
    needs_value = name in ("sensitivity", "specificity", "fixed")
    if needs_value and value is None:
        raise ConfigError(f"threshold method {name!r} needs a value, e.g. '{name}:0.95'")
    if not needs_value and value is not None:
        raise ConfigError(f"threshold method {name!r} takes no value; write {name!r}")
    return name, value


def check_threshold_method(method: str) -> str:
    """Return ``method`` if it names a threshold method :func:`choose_threshold` knows.

    Raises:
        ConfigError: unknown method, or a value missing, unwanted or out of range.
    """
    _parse_method(method)
    return method


def choose_threshold(y_val: ArrayLike, p_val: ArrayLike, method: str = "youden") -> float:
    """Choose an operating threshold on the VALIDATION split (never on the test split).

    Methods:
        ``youden``: maximises sensitivity + specificity - 1 (the highest such threshold).
        ``sensitivity:0.95``: the highest threshold whose validation sensitivity is at
        least 0.95. ``specificity:0.9``: the lowest threshold whose validation specificity
        is at least 0.9. ``f1``: maximises F1. ``fixed:0.5``: that number.

    A case is called positive when ``p >= threshold``. Every method picks a validation
    score; the threshold returned lies midway (in log-odds) between that score and the next
    lower validation score, which gives the same validation calls but keeps the deciding
    case off the boundary, so that tiny numerical changes (fp16 weights, ONNX Runtime,
    another CPU) do not flip it.

    Raises:
        ConfigError: unknown method or value out of range.
        EvaluationError: the validation labels lack a class the method needs.
    """
    name, value = _parse_method(method)
    if name == "fixed":
        assert value is not None
        return value
    ya, pa = _clean(y_val, p_val)
    if not _both_classes(ya):
        raise EvaluationError(
            f"threshold method {method!r} needs positive and negative validation cases for "
            f"this label ({int(ya.sum())} positives in {ya.size} cases); use a fixed "
            "threshold such as 'fixed:0.5' or a larger validation split")
    return _with_margin(_pick_score(ya.astype(np.int8), pa, name, value), pa)


def _pick_score(yi: np.ndarray, pa: np.ndarray, name: str, value: float | None) -> float:
    """The validation score that the threshold method ``name`` chooses."""
    if name == "f1":
        precision, recall, thr = precision_recall_curve(yi, pa)
        precision, recall = precision[:-1], recall[:-1]
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
        best = np.flatnonzero(f1 == f1.max())
        return float(thr[best].max())
    fpr, tpr, thr = roc_curve(yi, pa, drop_intermediate=False)
    fpr, tpr, thr = fpr[1:], tpr[1:], thr[1:]  # drop the leading +inf threshold
    assert value is not None or name == "youden"
    if name == "youden":
        j = tpr - fpr
        return float(thr[np.flatnonzero(j == j.max())].max())
    assert value is not None
    if name == "sensitivity":
        ok = tpr >= value - 1e-12
        return float(thr[ok].max())
    ok = (1.0 - fpr) >= value - 1e-12  # specificity
    if not ok.any():  # pragma: no cover - the highest threshold always has spec >= 0
        return float(thr.max())
    return float(thr[ok].min())


def _with_margin(score: float, p: np.ndarray) -> float:
    """Midway in log-odds between ``score`` and the next lower score in ``p``."""
    lower = p[p < score]
    if lower.size == 0 or not 0.0 < score <= 1.0:
        return score
    eps = 1e-7
    a, b = np.clip([score, float(lower.max())], eps, 1.0 - eps)
    mid = (math.log(a / (1 - a)) + math.log(b / (1 - b))) / 2
    t = 1.0 / (1.0 + math.exp(-mid))
    return float(t) if float(lower.max()) < t <= score else score


# ---------------------------------------------------------------------------- confusion


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class Confusion:
    """Confusion counts at one threshold and the rates derived from them.

    A rate whose denominator is zero (e.g. sensitivity with no positive case) is
    ``None``, which JSON writes as ``null``.

    Example:
        >>> c = confusion_at([1, 0, 1, 0], [0.9, 0.2, 0.4, 0.6], 0.5)
        >>> (c.tp, c.fp, c.tn, c.fn), c.sensitivity
        ((1, 1, 1, 1), 0.5)
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    accuracy: float | None
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None
    f1: float | None

    @property
    def n(self) -> int:
        """Cases counted."""
        return self.tp + self.fp + self.tn + self.fn

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def confusion_at(y: ArrayLike, p: ArrayLike, threshold: float) -> Confusion:
    """Count true/false positives/negatives when ``p >= threshold`` is called positive."""
    if not 0.0 <= float(threshold) <= 1.0 or math.isnan(float(threshold)):
        raise ConfigError(f"threshold must be within [0, 1], got {threshold}")
    ya, pa = _clean(y, p)
    pred = pa >= threshold
    pos = ya == 1.0
    tp = int(np.count_nonzero(pred & pos))
    fp = int(np.count_nonzero(pred & ~pos))
    fn = int(np.count_nonzero(~pred & pos))
    tn = int(np.count_nonzero(~pred & ~pos))
    return Confusion(
        threshold=float(threshold), tp=tp, fp=fp, tn=tn, fn=fn,
        accuracy=_ratio(tp + tn, tp + fp + tn + fn), sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp), ppv=_ratio(tp, tp + fp), npv=_ratio(tn, tn + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn))


# ---------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error, Brier score and the reliability curve.

    The curve has one point per non-empty equal-width bin: the bin edges, the number of
    cases, their mean predicted probability and their observed fraction of positives.

    Example:
        >>> cal = calibration([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], n_bins=10)
        >>> cal.ece, cal.brier
        (0.0, 0.25)
    """

    ece: float
    brier: float
    n_bins: int
    bin_lower: tuple[float, ...]
    bin_upper: tuple[float, ...]
    count: tuple[int, ...]
    mean_predicted: tuple[float, ...]
    fraction_positive: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the curve as a list of per-bin records."""
        curve = [
            {"lower": lo, "upper": hi, "n": n, "mean_predicted": mp, "fraction_positive": fp}
            for lo, hi, n, mp, fp in zip(self.bin_lower, self.bin_upper, self.count,
                                         self.mean_predicted, self.fraction_positive,
                                         strict=True)
        ]
        return {"ece": self.ece, "brier": self.brier, "n_bins": self.n_bins, "curve": curve}


def calibration(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> Calibration:
    """Expected calibration error over ``n_bins`` equal-width bins of [0, 1], the Brier
    score (``sklearn.metrics.brier_score_loss``) and the reliability-curve points.

    ECE is the case-weighted mean of ``|mean predicted - fraction positive|`` over the
    bins; bins are ``[k/n, (k+1)/n)``, the last one closed. With no cases both scores are
    NaN.
    """
    if n_bins < 1:
        raise ConfigError(f"n_bins must be at least 1, got {n_bins}")
    ya, pa = _clean(y, p)
    if not ya.size:
        return Calibration(math.nan, math.nan, n_bins, (), (), (), (), ())
    bins = np.minimum((pa * n_bins).astype(np.intp), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    sum_p = np.bincount(bins, weights=pa, minlength=n_bins)
    sum_y = np.bincount(bins, weights=ya, minlength=n_bins)
    used = count > 0
    mean_p = sum_p[used] / count[used]
    frac = sum_y[used] / count[used]
    ece = float(np.sum(count[used] * np.abs(mean_p - frac)) / ya.size)
    brier = float(brier_score_loss(ya.astype(np.int8), pa))
    k = np.flatnonzero(used)
    return Calibration(
        ece=ece, brier=brier, n_bins=n_bins,
        bin_lower=tuple(float(v) for v in k / n_bins),
        bin_upper=tuple(float(v) for v in (k + 1) / n_bins),
        count=tuple(int(v) for v in count[used]),
        mean_predicted=tuple(float(v) for v in mean_p),
        fraction_positive=tuple(float(v) for v in frac))


# ---------------------------------------------------------------------------- age


_DICOM_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def _age_years(age: object) -> float | None:
    if age is None or isinstance(age, bool):
        return None
    if isinstance(age, str):
        m = _DICOM_AGE.match(age)
        if m:
            return int(m.group(1)) * _AGE_UNIT_YEARS[m.group(2).upper()]
        try:
            return float(age)
        except ValueError:
            return None
    try:
        value = float(age)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def age_band(age: object, bands: tuple[int, ...] = AGE_BANDS) -> str | None:
    """The age band of ``age`` in years: ``"0-17"``, ``"18-39"``, ``"40-59"``, ``"60-79"``
    or ``"80+"`` with the default ``bands``.

    ``age`` may be a number of years or a DICOM age string (``"058Y"``, ``"006M"``).
    Missing or implausible ages (NaN, negative, over 130) give ``None``.

    Example:
        >>> age_band(17.9), age_band("045Y"), age_band(85), age_band(None)
        ('0-17', '40-59', '80+', None)
    """
    years = _age_years(age)
    if years is None or years < 0 or years > 130:
        return None
    lower = 0
    for edge in bands:
        if years < edge:
            return f"{lower}-{edge - 1}"
        lower = edge
    return f"{lower}+"
