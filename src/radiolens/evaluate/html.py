"""A single self-contained ``report.html`` from ``metrics.json`` content and PNG plots.

The page has no external resources: CSS is inline, plots are embedded as base64
``data:`` URIs and there is no script, so the file can be e-mailed or archived as is.
Every piece of text is escaped with :func:`html.escape`.

Example:
    >>> from radiolens.evaluate import write_html_report
    >>> write_html_report("run/report.html", metrics, plots)  # doctest: +SKIP
    PosixPath('run/report.html')
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radiolens import DISCLAIMER, __version__
from radiolens.evaluate.plots import PLOT_KINDS
from radiolens.evaluate.report import _write_atomic

__all__ = ["render_comparison_html", "render_html", "write_html_report"]

logger = logging.getLogger(__name__)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_PLOT_TITLES = {"roc": "ROC curve", "pr": "Precision-recall curve",
                "reliability": "Reliability diagram", "confusion": "Confusion matrix"}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 0 1.5rem 3rem; color: #1d2430; line-height: 1.45; }
header { border-bottom: 2px solid #1d4e89; margin-bottom: 1rem; }
h1 { color: #1d4e89; margin-bottom: 0.2rem; }
h2 { border-bottom: 1px solid #c8d1dc; padding-bottom: 0.2rem; margin-top: 2.2rem; }
.meta { color: #4a5566; font-size: 0.9rem; }
.disclaimer { background: #fff4d6; border: 2px solid #c98a00; border-radius: 6px;
              padding: 0.8rem 1rem; font-weight: 600; margin: 1rem 0; }
.note { color: #4a5566; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.6rem 0 1.2rem; font-size: 0.9rem; }
th, td { border: 1px solid #c8d1dc; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eef2f7; }
tr.macro td { font-weight: 700; background: #f6f8fb; }
.plots { display: flex; flex-wrap: wrap; gap: 0.8rem; }
figure { margin: 0; }
figure img { max-width: 380px; border: 1px solid #dde3ea; }
figcaption { font-size: 0.8rem; color: #4a5566; text-align: center; }
pre { background: #f6f8fb; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
footer { margin-top: 3rem; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if value == value else "–"
    return _e(value)


def _ci(record: Mapping[str, Any], key: str) -> str:
    ci = record.get(f"{key}_ci")
    text = _num(record.get(key))
    if isinstance(ci, Sequence) and len(ci) == 2 and None not in ci:
        text += f" [{_num(ci[0])}, {_num(ci[1])}]"
    return text


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], macro_last: bool = False,
           caption: str | None = None) -> str:
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th scope=\"col\">{_e(h)}</th>" for h in head)
               + "</tr></thead><tbody>")
    for i, row in enumerate(rows):
        cls = ' class="macro"' if macro_last and i == len(rows) - 1 else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _summary(metrics: Mapping[str, Any]) -> str:
    head = ["label", "n", "prevalence", "AUROC [CI]", "AUPRC", "threshold", "sensitivity",
            "specificity", "PPV", "NPV", "F1", "ECE", "Brier"]
    rows = []
    for name, r in metrics.get("labels", {}).items():
        cal = r.get("calibration", {})
        rows.append([_e(name), _num(r.get("n")), _num(r.get("prevalence")), _ci(r, "auroc"),
                     _num(r.get("auprc")), _num(r.get("threshold")), _num(r.get("sensitivity")),
                     _num(r.get("specificity")), _num(r.get("ppv")), _num(r.get("npv")),
                     _num(r.get("f1")), _num(cal.get("ece")), _num(cal.get("brier"))])
    m = metrics.get("macro", {})
    rows.append(["macro average", "", "", _num(m.get("auroc")), _num(m.get("auprc")), "",
                 _num(m.get("sensitivity")), _num(m.get("specificity")), "", "",
                 _num(m.get("f1")), _num(m.get("ece")), _num(m.get("brier"))])
    return _table(head, rows, macro_last=True)


def _image(path: str | Path, alt: str) -> str | None:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        logger.warning("plot %s not embedded: %s", p, exc)
        return None
    if not data.startswith(_PNG_SIGNATURE):
        logger.warning("plot %s not embedded: not a PNG file", p)
        return None
    b64 = base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{b64}" alt="{_e(alt)}">'
            f"<figcaption>{_e(alt)}</figcaption></figure>")


def _label_section(name: str, r: Mapping[str, Any],
                   plots: Mapping[str, str | Path] | None, anchor: str) -> str:
    out = [f'<section id="{_e(anchor)}"><h2>{_e(name)}</h2>']
    conf = r.get("confusion", {})
    rows = [
        ["cases with a label (n)", _num(r.get("n"))],
        ["positives", _num(r.get("n_positive"))],
        ["missing labels (excluded)", _num(r.get("n_missing"))],
        ["prevalence", _num(r.get("prevalence"))],
        ["AUROC [CI]", _ci(r, "auroc")],
        ["AUPRC [CI]", _ci(r, "auprc")],
        ["operating threshold", _num(r.get("threshold"))],
        ["accuracy", _num(r.get("accuracy"))],
        ["sensitivity", _num(r.get("sensitivity"))],
        ["specificity", _num(r.get("specificity"))],
        ["PPV", _num(r.get("ppv"))],
        ["NPV", _num(r.get("npv"))],
        ["F1", _num(r.get("f1"))],
        ["TP / FP / TN / FN", " / ".join(_num(conf.get(k)) for k in ("tp", "fp", "tn", "fn"))],
    ]
    out.append(_table(["metric", "value"], rows))

    cal = r.get("calibration", {})
    out.append("<h3>Calibration</h3>")
    out.append(f'<p>ECE {_num(cal.get("ece"))} ({_num(cal.get("n_bins"))} equal-width bins), '
               f'Brier score {_num(cal.get("brier"))}.</p>')
    curve = cal.get("curve", [])
    if curve:
        out.append(_table(
            ["bin", "n", "mean predicted", "fraction positive"],
            [[f"{_num(c.get('lower'), 2)}–{_num(c.get('upper'), 2)}", _num(c.get("n")),
              _num(c.get("mean_predicted")), _num(c.get("fraction_positive"))] for c in curve]))

    out.append(_subgroups(r.get("subgroups", {})))

    if plots:
        figures = []
        for kind in (*PLOT_KINDS, *(k for k in plots if k not in PLOT_KINDS)):
            if kind in plots:
                img = _image(plots[kind], f"{_PLOT_TITLES.get(kind, kind)}: {name}")
                if img:
                    figures.append(img)
        if figures:
            out.append('<div class="plots">' + "\n".join(figures) + "</div>")
    out.append("</section>")
    return "\n".join(out)


def _subgroups(subgroups: Mapping[str, Mapping[str, Any]]) -> str:
    """The subgroup tables, or a sentence saying why there are none."""
    out = ["<h3>Subgroups</h3>"]
    filled = {t: g for t, g in subgroups.items() if g}
    if not filled:
        out.append('<p class="note">No subgroup tables: the data has no sex, age or view '
                   "values (add sex/age/view columns to the label table).</p>")
        return "\n".join(out)
    out.append('<p class="note">At the operating threshold. AUROC is shown only where the '
               "subgroup has both classes; small subgroups give unstable estimates.</p>")
    empty = [t.replace("_", " ") for t in subgroups if t not in filled]
    if empty:
        out.append(f'<p class="note">No {_e(" / ".join(empty))} table: the data has no such '
                   "values.</p>")
    for table, groups in filled.items():
        rows = [[_e(g), _num(s.get("n")), _num(s.get("n_positive")), _num(s.get("prevalence")),
                 _num(s.get("auroc")), _num(s.get("sensitivity")), _num(s.get("specificity"))]
                for g, s in groups.items()]
        out.append(_table([table.replace("_", " "), "n", "positives", "prevalence", "AUROC",
                           "sensitivity", "specificity"], rows))
    return "\n".join(out)


def _cases_phrase(data: Mapping[str, Any]) -> str:
    """``330 cases of the 'val' split`` (or plain ``330 cases`` when the split is unknown)."""
    split = data.get("split")
    return f"{_num(data.get('n_cases'))} cases" + (f" of the {_e(repr(split))} split"
                                                   if split else "")


def _threshold_note(settings: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """Where the operating thresholds were chosen, relative to the cases evaluated here."""
    chosen = _e(settings.get("thresholds_chosen_on") or "a validation split")
    if settings.get("thresholds_on_evaluated_cases"):
        return (f"which was chosen on these same cases ({chosen}): <strong>the figures at the "
                "threshold are optimistic</strong>; judge the model on a separate test "
                "split")
    split = data.get("split")
    here = f"the {_e(repr(split))} split evaluated here" if split else "the cases evaluated here"
    return f"which was chosen on {chosen}, not on {here}"


def render_html(metrics: Mapping[str, Any],
                plots: Mapping[str, Mapping[str, str | Path]] | None = None, *,
                title: str = "radiolens evaluation report",
                figures: Mapping[str, str | Path] | None = None) -> str:
    """Render the evaluation report as one self-contained HTML page.

    Args:
        metrics: ``metrics.json`` content (from ``evaluate_predictions``, or as read back).
        plots: ``{label: {kind: png_path}}`` as returned by ``plot_evaluation``; embedded
            as data URIs. Files that are missing or not PNG are skipped with a warning.
        title: page title.
        figures: model-level PNGs, ``{caption: png_path}`` (e.g. the run's learning
            curve), shown in a "Training" section.
    """
    data = metrics.get("data", {})
    settings = metrics.get("settings", {})
    created = metrics.get("created")
    level = 100 * (1 - float(settings.get("alpha", 0.05)))
    meta = [f"radiolens {_e(metrics.get('radiolens_version', __version__))}"]
    if created:
        meta.append(f"created {_e(created)}")
    if data:
        meta.append(_cases_phrase(data))
        if data.get("case_ids_sha256"):
            meta.append(f"case ids sha256 {_e(str(data['case_ids_sha256'])[:12])}…")
    labels = list(metrics.get("labels", {}))
    anchors = {name: f"label-{i}" for i, name in enumerate(labels)}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1><p class=\"meta\">{' · '.join(meta)}</p></header>",
        f'<p class="disclaimer" role="note">{_e(DISCLAIMER)}</p>',
        "<main>",
        "<h2>Summary</h2>",
        f'<p class="note">AUROC with its {level:g}% confidence interval: '
        f"{_e(settings.get('confidence_interval', 'bootstrap'))}; "
        f"{_num(settings.get('n_boot'))} resamples. Sensitivity, specificity, PPV, NPV and F1 "
        f"are at each label's operating threshold, {_threshold_note(settings, data)}; a "
        "case is positive when "
        f"{_e(settings.get('positive_if', 'p >= threshold'))}.</p>",
        _summary(metrics),
    ]
    if labels:
        parts.append("<nav><p>" + " · ".join(
            f'<a href="#{anchors[n]}">{_e(n)}</a>' for n in labels) + "</p></nav>")
    for name in labels:
        parts.append(_label_section(name, metrics["labels"][name],
                                    (plots or {}).get(name), anchors[name]))
    shown = [img for caption, path in (figures or {}).items()
             if (img := _image(path, caption)) is not None]
    if shown:
        parts.append('<h2>Training</h2><div class="plots">' + "\n".join(shown) + "</div>")
    config = metrics.get("config")
    if config:
        parts.append("<h2>Configuration</h2><details><summary>resolved configuration</summary>"
                     f"<pre>{_e(json.dumps(config, indent=2, ensure_ascii=False))}</pre>"
                     "</details>")
    if data:
        parts.append("<h2>Evaluated data</h2><pre>"
                     f"{_e(json.dumps(data, indent=2, ensure_ascii=False))}</pre>")
    parts += [
        "</main>",
        f'<footer><p class="disclaimer" role="note">{_e(DISCLAIMER)}</p></footer>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_html_report(path: str | Path, metrics: Mapping[str, Any],
                      plots: Mapping[str, Mapping[str, str | Path]] | None = None, *,
                      title: str = "radiolens evaluation report",
                      figures: Mapping[str, str | Path] | None = None) -> Path:
    """Write :func:`render_html` to ``path`` (or ``path/report.html`` for a directory).

    Returns:
        The path written (replaced atomically).
    """
    target = Path(path)
    if target.is_dir():
        target = target / "report.html"
    _write_atomic(target, render_html(metrics, plots, title=title, figures=figures))
    logger.info("wrote %s", target)
    return target


def render_comparison_html(table: str, paired_text: str,
                           tests: Sequence[Mapping[str, Any]],
                           plots: Mapping[str, str | Path]) -> str:
    """``compare.html``: the side-by-side table, the paired tests and overlaid ROC curves."""
    rows = [[_e(t["label"]), _e(f"{t['run']} vs {t['reference']}"), _num(t["n"]),
             _num(t["auroc_run"]), _num(t["auroc_reference"]), _num(t["difference"]),
             f"[{_num(t['ci_low'])}, {_num(t['ci_high'])}]", _num(t["p_value"], 4)]
            for t in tests]
    figures = [img for label, path in plots.items()
               if (img := _image(path, f"ROC curves: {label}")) is not None]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>radiolens comparison</title><style>{_CSS}</style></head><body>",
        f"<header><h1>radiolens comparison</h1><p class=\"meta\">radiolens "
        f"{_e(__version__)}</p></header>",
        f'<p class="disclaimer" role="note">{_e(DISCLAIMER)}</p>',
        "<main><h2>Side by side</h2>", f"<pre>{_e(table)}</pre>",
        "<h2>Paired test of AUROC differences</h2>",
        '<p class="note">DeLong\'s test on the cases both runs scored; difference = run '
        "minus reference, with its 95% confidence interval. Many labels mean many tests: "
        "a p-value below 0.05 for one of them is weak evidence on its own.</p>",
        _table(["label", "runs", "n", "AUROC run", "AUROC reference", "difference",
                "95% CI", "p"], rows) if rows else f"<p>{_e(paired_text)}</p>",
    ]
    if figures:
        parts.append('<h2>ROC curves</h2><div class="plots">' + "\n".join(figures) + "</div>")
    parts += ["</main>", "</body></html>"]
    return "\n".join(parts) + "\n"
