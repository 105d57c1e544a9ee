"""Per-label metrics: hand-computed AUROC/AUPRC, bootstrap, thresholds, confusion, ECE."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from radiolens.errors import ConfigError
from radiolens.evaluate import (
    EvaluationError,
    age_band,
    auprc,
    auroc,
    bootstrap_ci,
    calibration,
    choose_threshold,
    confusion_at,
)
from radiolens.evaluate.metrics import _bootstrap_stats

NAN = math.nan


def _scores(n: int, seed: int, prevalence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(float)
    p = 1.0 / (1.0 + np.exp(-(1.5 * (2 * y - 1) + rng.normal(0.0, 1.5, n))))
    return y, p


# ---------------------------------------------------------------------------- AUROC / AUPRC


def test_auroc_hand_computed() -> None:
    # pairs (pos, neg): 0.35>0.1 win, 0.35<0.4 loss, 0.8 wins twice -> 3 / 4
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_auroc_counts_ties_as_half() -> None:
    # 0.6 vs 0.2 win, 0.6 vs 0.6 tie, 0.9 wins twice -> 3.5 / 4
    assert auroc([0, 1, 0, 1], [0.2, 0.6, 0.6, 0.9]) == pytest.approx(0.875)
    assert auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


def test_auprc_hand_computed() -> None:
    # ranked: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): AP = 0.5 * 1 + 0.5 * 2/3
    assert auprc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 + 1 / 3)
    assert auprc([0, 1, 1], [0.1, 0.7, 0.9]) == pytest.approx(1.0)


def test_nan_labels_are_excluded() -> None:
    y, p = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    y_nan, p_nan = [0, NAN, 0, 1, NAN, 1], [0.1, 0.99, 0.4, 0.35, 0.0, 0.8]
    assert auroc(y_nan, p_nan) == auroc(y, p)
    assert auprc(y_nan, p_nan) == auprc(y, p)
    assert confusion_at(y_nan, p_nan, 0.3).n == 4
    assert calibration(y_nan, p_nan).brier == calibration(y, p).brier


def test_one_class_gives_nan() -> None:
    assert math.isnan(auroc([0, 0, NAN], [0.1, 0.2, 0.9]))
    assert math.isnan(auprc([0, 0], [0.1, 0.2]))
    assert auprc([1, 1], [0.1, 0.2]) == 1.0
    assert all(math.isnan(v) for v in bootstrap_ci([1, 1, 1], [0.2, 0.3, 0.4]))


@pytest.mark.parametrize(("y", "p", "match"), [
    ([0, -1, 1], [0.1, 0.2, 0.3], "uncertain"),
    ([0, 1, 1], [0.1, 1.2, 0.3], "sigmoid"),
    ([0, 1], [0.1, 0.2, 0.3], "same cases"),
    ([[0, 1]], [[0.1, 0.2]], "1-D"),
])
def test_bad_inputs_say_what_to_do(y: object, p: object, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        auroc(y, p)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("metric", ["auroc", "auprc"])
@pytest.mark.parametrize("ties", [False, True])
def test_vectorised_bootstrap_matches_sklearn(metric: str, ties: bool) -> None:
    y, p = _scores(60, seed=3)
    if ties:
        p = np.round(p, 1)
    stats = _bootstrap_stats(y, p, metric, n_boot=50, seed=11)
    idx = np.random.default_rng(11).integers(0, y.size, size=(50, y.size))
    sk = roc_auc_score if metric == "auroc" else average_precision_score
    expected = [sk(y[i], p[i]) if 0 < y[i].sum() < y.size else NAN for i in idx]
    np.testing.assert_allclose(stats, expected, rtol=1e-12, atol=1e-12)


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_data() -> None:
    widths = []
    for n in (100, 2000):
        y, p = _scores(n, seed=5)
        lo, hi = bootstrap_ci(y, p, "auroc", n_boot=500, seed=0)
        assert lo <= auroc(y, p) <= hi
        lo2, hi2 = bootstrap_ci(y, p, auprc, n_boot=500, seed=0)
        assert lo2 <= auprc(y, p) <= hi2
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_bootstrap_is_seeded_and_generic_metrics_agree() -> None:
    y, p = _scores(150, seed=8)
    ci = bootstrap_ci(y, p, "auroc", n_boot=200, seed=4)
    assert bootstrap_ci(y, p, "auroc", n_boot=200, seed=4) == ci
    assert bootstrap_ci(y, p, "auroc", n_boot=200, seed=5) != ci
    # a plain function goes through the per-resample loop on the same resamples
    loop = bootstrap_ci(y, p, lambda a, b: float(roc_auc_score(a, b)), n_boot=200, seed=4)
    assert loop == pytest.approx(ci)


def test_stratified_bootstrap_and_skipped_one_class_resamples() -> None:
    y, p = _scores(200, seed=9)
    lo, hi = bootstrap_ci(y, p, "auroc", n_boot=300, stratified=True)
    assert lo <= auroc(y, p) <= hi
    # 2 positives in 8 cases: many resamples hold no positive and are skipped
    y_small = np.array([1, 1, 0, 0, 0, 0, 0, 0.0])
    p_small = np.linspace(0.9, 0.1, 8)
    lo, hi = bootstrap_ci(y_small, p_small, "auroc", n_boot=300)
    assert 0.0 <= lo <= hi <= 1.0


def test_bootstrap_rejects_unknown_metric_and_bad_settings() -> None:
    y, p = _scores(50, seed=1)
    with pytest.raises(ConfigError, match="did you mean 'auroc'"):
        bootstrap_ci(y, p, "aucroc")
    with pytest.raises(ConfigError, match="alpha"):
        bootstrap_ci(y, p, alpha=5)


# ---------------------------------------------------------------------------- thresholds


def test_sensitivity_threshold_is_reached_on_validation_and_is_the_highest() -> None:
    y, p = _scores(400, seed=12)
    t = choose_threshold(y, p, "sensitivity:0.95")
    assert confusion_at(y, p, t).sensitivity >= 0.95
    higher = np.unique(p[p > t])  # higher[0] is the deciding case, the same calls as t
    assert replace(confusion_at(y, p, higher[0]), threshold=t) == confusion_at(y, p, t)
    assert higher.size == 1 or confusion_at(y, p, higher[1]).sensitivity < 0.95


def test_specificity_threshold() -> None:
    y, p = _scores(400, seed=13)
    t = choose_threshold(y, p, "specificity:0.9")
    assert confusion_at(y, p, t).specificity >= 0.9
    lower = np.unique(p[p < t])
    assert lower.size == 0 or confusion_at(y, p, lower[-1]).specificity < 0.9


def test_threshold_keeps_the_deciding_case_off_the_boundary() -> None:
    # the deciding validation score is 0.7; the next lower one 0.2: the threshold lies
    # midway in log-odds, so a small change of either score keeps every call
    y, p = [0, 0, 1, 1], [0.1, 0.2, 0.7, 0.8]
    t = choose_threshold(y, p)
    assert 0.2 < t < 0.7
    logit = np.log(np.array([0.2, t, 0.7]) / (1 - np.array([0.2, t, 0.7])))
    assert logit[1] - logit[0] == pytest.approx(logit[2] - logit[1])
    for eps in (-0.01, 0.01):
        q = np.array(p) + eps
        assert confusion_at(y, q, t).accuracy == 1.0


def test_youden_separates_separable_data() -> None:
    t = choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.8])
    assert confusion_at([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.8], t).accuracy == 1.0


def test_threshold_with_no_lower_score_is_that_score() -> None:
    assert choose_threshold([1, 1, 0], [0.3, 0.9, 0.3], "sensitivity:1.0") == 0.3


def test_youden_and_f1_are_optimal_over_candidates() -> None:
    y, p = _scores(300, seed=14)
    cands = np.unique(p)

    def best(key: str) -> float:
        def score(t: float) -> float:
            c = confusion_at(y, p, t)
            if key == "f1":
                return c.f1 or 0.0
            return (c.sensitivity or 0.0) + (c.specificity or 0.0) - 1.0
        return max(score(t) for t in cands)

    t_y, t_f = choose_threshold(y, p, "youden"), choose_threshold(y, p, "f1")
    c_y, c_f = confusion_at(y, p, t_y), confusion_at(y, p, t_f)
    assert c_y.sensitivity + c_y.specificity - 1.0 == pytest.approx(best("youden"))
    assert c_f.f1 == pytest.approx(best("f1"))


def test_fixed_threshold() -> None:
    assert choose_threshold([0, 1], [0.2, 0.3], "fixed:0.5") == 0.5
    assert choose_threshold([0, 0], [0.2, 0.3], "fixed:0.25") == 0.25  # no class needed


@pytest.mark.parametrize(("method", "match"), [
    ("youdn", "did you mean 'youden'"),
    ("sensitivity", "needs a value"),
    ("fixed:1.5", "within"),
    ("f1:0.3", "takes no value"),
])
def test_bad_threshold_methods(method: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        choose_threshold([0, 1], [0.2, 0.8], method)


def test_threshold_needs_both_classes_on_validation() -> None:
    with pytest.raises(EvaluationError, match=r"fixed:0\.5"):
        choose_threshold([0, 0, NAN], [0.2, 0.3, 0.9], "youden")


# ---------------------------------------------------------------------------- confusion


def test_confusion_counts_exact() -> None:
    y = [1, 1, 1, 0, 0, 0, 0, NAN]
    p = [0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.5, 0.99]
    c = confusion_at(y, p, 0.5)  # p >= 0.5 is positive: 0.5 (negative case) is an FP
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 2, 2, 1)
    assert c.sensitivity == pytest.approx(2 / 3)
    assert c.specificity == pytest.approx(0.5)
    assert c.ppv == pytest.approx(0.5)
    assert c.npv == pytest.approx(2 / 3)
    assert c.accuracy == pytest.approx(4 / 7)
    assert c.f1 == pytest.approx(4 / 7)


def test_confusion_zero_divisions_are_none_and_json_valid() -> None:
    c = confusion_at([0, 0, 0], [0.1, 0.2, 0.3], 0.9)
    assert (c.tn, c.sensitivity, c.ppv, c.f1) == (3, None, None, None)
    assert c.specificity == 1.0
    json.loads(json.dumps(c.to_dict(), allow_nan=False))
    empty = confusion_at([NAN], [0.5], 0.5)
    assert empty.n == 0 and empty.accuracy is None


# ---------------------------------------------------------------------------- calibration


def test_ece_zero_when_perfectly_calibrated() -> None:
    # 0.25 bin: 1 of 4 positive; 0.75 bin: 3 of 4 positive
    y = [1, 0, 0, 0, 1, 1, 1, 0]
    p = [0.25] * 4 + [0.75] * 4
    cal = calibration(y, p, n_bins=10)
    assert cal.ece == pytest.approx(0.0, abs=1e-12)
    assert cal.count == (4, 4)
    assert cal.mean_predicted == pytest.approx((0.25, 0.75))
    assert cal.fraction_positive == pytest.approx((0.25, 0.75))
    assert cal.brier == pytest.approx(np.mean((np.array(p) - np.array(y)) ** 2))


def test_ece_positive_when_miscalibrated() -> None:
    y = [1, 0, 1, 0]
    cal = calibration(y, [0.9] * 4)
    assert cal.ece == pytest.approx(0.4)
    assert cal.brier == pytest.approx((0.01 + 0.81) / 2)


def test_calibration_bins_include_the_edges() -> None:
    cal = calibration([0, 1, 1], [0.0, 1.0, 0.1], n_bins=10)
    assert cal.bin_lower == (0.0, 0.1, 0.9) and cal.bin_upper[-1] == 1.0
    record = cal.to_dict()
    assert [b["n"] for b in record["curve"]] == [1, 1, 1]
    json.loads(json.dumps(record, allow_nan=False))


# ---------------------------------------------------------------------------- age


@pytest.mark.parametrize(("age", "band"), [
    (0, "0-17"), (17.9, "0-17"), (18, "18-39"), (39, "18-39"), (40, "40-59"), (59.5, "40-59"),
    (60, "60-79"), (79, "60-79"), (80, "80+"), (101, "80+"), ("045Y", "40-59"),
    ("018M", "0-17"), ("72", "60-79"), (None, None), (NAN, None), (-3, None), (412, None),
    ("unknown", None),
])
def test_age_band(age: object, band: str | None) -> None:
    assert age_band(age) == band
