"""Evaluation plots as PNG files: ROC, precision-recall, reliability and confusion matrix.

matplotlib is imported inside the functions, and each figure is drawn on its own Agg
canvas (``matplotlib.figure.Figure`` + ``FigureCanvasAgg``), so importing this module
costs nothing and never switches the process-wide pyplot backend of the caller (a
notebook keeps its inline backend). Figures are cleared once saved.

Example:
    >>> from radiolens.evaluate import evaluate_predictions, plot_evaluation
    >>> metrics = evaluate_predictions(y_true, y_prob, labels, thresholds)  # doctest: +SKIP
    >>> paths = plot_evaluation(y_true, y_prob, labels, metrics, "run/plots")  # doctest: +SKIP
    >>> paths["Effusion"]["roc"]  # doctest: +SKIP
    PosixPath('run/plots/roc_Effusion.png')
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from radiolens.errors import MissingDependencyError
from radiolens.evaluate.metrics import EvaluationError, _both_classes, _clean

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "PLOT_KINDS",
    "plot_calibration",
    "plot_confusion",
    "plot_evaluation",
    "plot_learning_curve",
    "plot_pr",
    "plot_roc",
    "plot_roc_overlay",
]

logger = logging.getLogger(__name__)

#: The plots made per label, in the order the HTML report shows them.
PLOT_KINDS: tuple[str, ...] = ("roc", "pr", "reliability", "confusion")

_SIZE = (4.8, 4.2)


@contextmanager
def _figure(path: Path, dpi: int) -> Iterator[Figure]:
    """A new figure on its own Agg canvas, saved as PNG to ``path`` and cleared."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingDependencyError("matplotlib", "train") from exc
    fig = Figure(figsize=_SIZE, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    try:
        yield fig
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=dpi)
    finally:
        fig.clear()


def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _level(alpha: float) -> str:
    return f"{100 * (1 - alpha):g}%"


def plot_roc(y: npt.ArrayLike, p: npt.ArrayLike, path: str | Path, *, label: str = "",
             threshold: float | None = None, auroc_value: float | None = None,
             auroc_ci: Sequence[float | None] | None = None, alpha: float = 0.05,
             dpi: int = 100) -> Path:
    """ROC curve, with the operating point at ``threshold`` marked and the AUROC (and its
    confidence interval) in the legend.

    Raises:
        EvaluationError: ``y`` lacks a class, so there is no ROC curve.
    """
    ya, pa = _clean(y, p)
    if not _both_classes(ya):
        raise EvaluationError(f"{label or 'this label'}: no ROC curve without both classes")
    fpr, tpr, _ = roc_curve(ya.astype(np.int8), pa)
    value = float(roc_auc_score(ya.astype(np.int8), pa)) if auroc_value is None else auroc_value
    text = f"AUROC {_fmt(value)}"
    if auroc_ci is not None and len(auroc_ci) == 2 and None not in auroc_ci:
        text += f" ({_level(alpha)} CI {_fmt(auroc_ci[0])}-{_fmt(auroc_ci[1])})"
    out = Path(path)
    with _figure(out, dpi) as fig:
        ax = fig.add_subplot()
        ax.plot(fpr, tpr, color="C0", lw=2, label=text)
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="chance")
        if threshold is not None:
            pred = pa >= threshold
            pos = ya == 1.0
            sens = np.count_nonzero(pred & pos) / np.count_nonzero(pos)
            spec = np.count_nonzero(~pred & ~pos) / np.count_nonzero(~pos)
            ax.plot([1 - spec], [sens], "o", color="C3", ms=8,
                    label=f"threshold {threshold:.3g}: sens {sens:.2f}, spec {spec:.2f}")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 - specificity",
               ylabel="sensitivity", title=f"ROC: {label}" if label else "ROC")
        ax.set_aspect("equal")
        ax.legend(loc="lower right", fontsize="small")
    return out


def plot_pr(y: npt.ArrayLike, p: npt.ArrayLike, path: str | Path, *, label: str = "",
            threshold: float | None = None, dpi: int = 100) -> Path:
    """Precision-recall curve with the prevalence baseline and the operating point.

    Raises:
        EvaluationError: ``y`` has no positive case.
    """
    ya, pa = _clean(y, p)
    if not ya.size or ya.sum() == 0:
        raise EvaluationError(f"{label or 'this label'}: no PR curve without positive cases")
    yi = ya.astype(np.int8)
    precision, recall, _ = precision_recall_curve(yi, pa)
    ap = float(average_precision_score(yi, pa))
    prevalence = float(ya.mean())
    out = Path(path)
    with _figure(out, dpi) as fig:
        ax = fig.add_subplot()
        ax.step(recall, precision, where="post", color="C0", lw=2, label=f"AUPRC {ap:.3f}")
        ax.axhline(prevalence, color="0.6", lw=1, ls="--",
                   label=f"prevalence {prevalence:.3f}")
        if threshold is not None:
            pred = pa >= threshold
            tp = np.count_nonzero(pred & (ya == 1.0))
            if np.count_nonzero(pred):
                prec, rec = tp / np.count_nonzero(pred), tp / np.count_nonzero(ya == 1.0)
                ax.plot([rec], [prec], "o", color="C3", ms=8,
                        label=f"threshold {threshold:.3g}: recall {rec:.2f}, PPV {prec:.2f}")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="recall (sensitivity)",
               ylabel="precision (PPV)", title=f"Precision-recall: {label}" if label else
               "Precision-recall")
        ax.legend(loc="lower left", fontsize="small")
    return out


def plot_calibration(calib: Mapping[str, Any], path: str | Path, *, label: str = "",
                     dpi: int = 100) -> Path:
    """Reliability diagram from a calibration record (``metrics["labels"][x]["calibration"]``
    or :meth:`Calibration.to_dict`): observed fraction positive against mean predicted
    probability per bin, with the case count per bin shaded below."""
    curve = list(calib.get("curve", []))
    mean_p = [c["mean_predicted"] for c in curve]
    frac = [c["fraction_positive"] for c in curve]
    counts = np.asarray([c["n"] for c in curve], dtype=float)
    out = Path(path)
    with _figure(out, dpi) as fig:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect calibration")
        ax.plot(mean_p, frac, "o-", color="C0", lw=2,
                label=f"ECE {_fmt(calib.get('ece'))}, Brier {_fmt(calib.get('brier'))}")
        if counts.size:
            hist = ax.twinx()
            lower = [c["lower"] for c in curve]
            width = [c["upper"] - c["lower"] for c in curve]
            hist.bar(lower, counts, width=width, align="edge", color="C0", alpha=0.15)
            hist.set_ylim(0, counts.max() * 4)
            hist.set_yticks([])
        ax.set(xlim=(0, 1), ylim=(-0.01, 1.01), xlabel="mean predicted probability",
               ylabel="fraction positive",
               title=f"Reliability: {label}" if label else "Reliability")
        ax.legend(loc="upper left", fontsize="small")
    return out


def plot_confusion(confusion: Mapping[str, int], path: str | Path, *, label: str = "",
                   threshold: float | None = None, dpi: int = 100) -> Path:
    """2 x 2 confusion matrix (rows: true class; columns: predicted class) with counts."""
    grid = np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]])
    out = Path(path)
    with _figure(out, dpi) as fig:
        ax = fig.add_subplot()
        ax.imshow(grid, cmap="Blues", vmin=0, vmax=max(int(grid.max()), 1))
        for (i, j), count in np.ndenumerate(grid):
            dark = count > grid.max() / 2
            ax.text(j, i, str(int(count)), ha="center", va="center", fontsize=14,
                    color="white" if dark else "black")
        ax.set_xticks([0, 1], labels=["negative", "positive"])
        ax.set_yticks([0, 1], labels=["negative", "positive"])
        ax.set(xlabel="predicted", ylabel="true")
        title = f"Confusion: {label}" if label else "Confusion"
        if threshold is not None:
            title += f" (p >= {threshold:.3g})"
        ax.set_title(title)
    return out


def _slug(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "label"
    slug, k = base, 2
    while slug.lower() in used:
        slug, k = f"{base}_{k}", k + 1
    used.add(slug.lower())
    return slug


def plot_evaluation(y_true: npt.ArrayLike, y_prob: npt.ArrayLike, labels: Sequence[str],
                    metrics: Mapping[str, Any], out_dir: str | Path,
                    dpi: int = 100) -> dict[str, dict[str, Path]]:
    """Write the four plots of every label into ``out_dir``.

    ROC and precision-recall curves need both classes (a positive case) in the test
    data; without them the label gets a warning and no such plot.

    Args:
        y_true: (cases, labels) 1 / 0 / NaN, as given to ``evaluate_predictions``.
        y_prob: (cases, labels) probabilities.
        labels: label names in column order.
        metrics: the dict from :func:`~radiolens.evaluate.evaluate_predictions`.
        out_dir: folder for the PNG files (created).
        dpi: resolution.

    Returns:
        ``{label: {"roc": path, "pr": path, "reliability": path, "confusion": path}}``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_prob, dtype=np.float64)
    if y.ndim == 1:
        y, p = y[:, None], p[:, None]
    if y.shape != p.shape or y.shape[1] != len(labels):
        raise EvaluationError(
            f"y_true {y.shape} and y_prob {p.shape} must both be (cases, {len(labels)})")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    alpha = float(metrics.get("settings", {}).get("alpha", 0.05))
    used: set[str] = set()
    paths: dict[str, dict[str, Path]] = {}
    for j, name in enumerate(labels):
        rec = metrics["labels"][name]
        slug = _slug(name, used)
        t = rec.get("threshold")
        out: dict[str, Path] = {}
        ya, pa = y[:, j], p[:, j]
        if rec.get("auroc") is not None:
            out["roc"] = plot_roc(ya, pa, folder / f"roc_{slug}.png", label=name, threshold=t,
                                  auroc_value=rec["auroc"], auroc_ci=rec.get("auroc_ci"),
                                  alpha=alpha, dpi=dpi)
        else:
            logger.warning("%s: the test data lack a class; no ROC curve", name)
        if rec.get("n_positive"):
            out["pr"] = plot_pr(ya, pa, folder / f"pr_{slug}.png", label=name, threshold=t,
                                dpi=dpi)
        out["reliability"] = plot_calibration(rec["calibration"],
                                              folder / f"reliability_{slug}.png", label=name,
                                              dpi=dpi)
        out["confusion"] = plot_confusion(rec["confusion"], folder / f"confusion_{slug}.png",
                                          label=name, threshold=t, dpi=dpi)
        paths[name] = out
    return paths


def plot_learning_curve(history: Sequence[Mapping[str, Any]], path: str | Path, *,
                        dpi: int = 100, metric: str = "val_auroc",
                        metric_label: str = "validation AUROC") -> Path:
    """Training and validation loss (left axis) and a validation metric (right) per epoch.

    Args:
        history: rows of ``history.csv`` (``epoch``, ``train_loss``, ``val_loss``,
            ``val_auroc``; values may be strings, blank or ``nan``).
        path: the PNG to write.
    """
    from matplotlib.ticker import MaxNLocator

    def column(key: str) -> npt.NDArray[np.float64]:
        return np.array([_float(row.get(key)) for row in history], dtype=np.float64)

    epochs = column("epoch")
    out = Path(path)
    with _figure(out, dpi) as fig:
        ax = fig.add_subplot()
        ax.plot(epochs, column("train_loss"), "o-", color="C0", label="training loss")
        ax.plot(epochs, column("val_loss"), "s-", color="C1", label="validation loss")
        ax.set(xlabel="epoch", ylabel="loss", title="Learning curve")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        right = ax.twinx()
        right.plot(epochs, column(metric), "^--", color="C2", label=metric_label)
        right.set(ylabel=metric_label, ylim=(0.0, 1.02))
        handles = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], loc="best", fontsize="small")
    return out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def plot_roc_overlay(curves: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]],
                     path: str | Path, *, label: str = "", dpi: int = 100) -> Path:
    """ROC curves of several runs on one plot (``{run: (y, p)}``), AUROC in the legend.

    Runs whose labels lack a class are left out with a warning.
    """
    out = Path(path)
    with _figure(out, dpi) as fig:
        ax = fig.add_subplot()
        for k, (run, (y, p)) in enumerate(curves.items()):
            ya, pa = _clean(y, p)
            if not _both_classes(ya):
                logger.warning("%s: no ROC curve for %s without both classes", run, label)
                continue
            fpr, tpr, _ = roc_curve(ya.astype(np.int8), pa)
            value = float(roc_auc_score(ya.astype(np.int8), pa))
            ax.plot(fpr, tpr, color=f"C{k % 10}", lw=2, label=f"{run}: AUROC {_fmt(value)}")
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="chance")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 - specificity",
               ylabel="sensitivity", title=f"ROC: {label}" if label else "ROC")
        ax.set_aspect("equal")
        ax.legend(loc="lower right", fontsize="small")
    return out
