"""Report labeller benchmark: accuracy on the OpenI gold standard and speed, side by side
with a medspaCy ConText pipeline given the same reports and the same synonym list.

Run it with ``make bench-labeller`` (medspaCy needs numpy<2, so it lives in its own venv,
.venv-bench). Without medspaCy it reports radiolens alone.

    python bench/label_openi.py [--reports ../shared/data/openi/reports.jsonl] [--repeat 5]

Accuracy: micro precision/recall/F1 against the NegBio OpenI gold labels, uncertain
counted as negative (as the gold does). Three averages are printed: the 14 findings; the
13 the gold annotates (it has no Hernia positive at all, in 3,851 reports, so every
correctly found hernia counts as a false positive); and the 14 plus "No Finding".
Speed: reports per second in one process, best of ``--repeat`` passes, labelling only
(files already in memory, no output written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_REPORTS = HERE.parent.parent / "shared" / "data" / "openi" / "reports.jsonl"

from radiolens import ReportLabeler, __version__  # noqa: E402
from radiolens.findings import CHESTXRAY14_FINDINGS, Certainty  # noqa: E402
from radiolens.reports.rules import OTHER, load_rules  # noqa: E402
from radiolens.reports.scoring import evaluate_labels  # noqa: E402


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def gold_table(reports: list[dict]) -> dict[str, dict[str, Certainty | None]]:
    return {r["id"]: {k: Certainty(int(v)) for k, v in r["labels"].items()} for r in reports}


def scores(pred: dict, gold: dict) -> dict[str, tuple[float, float, float]]:
    sets = {
        "14 findings": list(CHESTXRAY14_FINDINGS),
        "13 (no Hernia)": [f for f in CHESTXRAY14_FINDINGS if f != "Hernia"],
        "14 + No Finding": [*CHESTXRAY14_FINDINGS, "No Finding"],
    }
    out = {}
    for name, findings in sets.items():
        m = evaluate_labels(pred, gold, findings, "negative").micro
        out[name] = (m.precision, m.recall, m.f1)
    return out


def run_radiolens(reports: list[dict], repeat: int) -> tuple[dict, float]:
    labeler = ReportLabeler().load()
    docs = [{"findings": r["findings"], "impression": r["impression"]} for r in reports]
    best = float("inf")
    pred = {}
    for _ in range(repeat):
        t = time.perf_counter()
        results = [labeler.label(d) for d in docs]
        best = min(best, time.perf_counter() - t)
    for r, res in zip(reports, results, strict=True):
        pred[r["id"]] = dict(res.labels)
    return pred, len(reports) / best


def medspacy_pipeline():  # pragma: no cover - needs the bench venv
    import medspacy
    from medspacy.ner import TargetRule

    try:
        from loguru import logger  # PyRuSH logs every token at DEBUG level otherwise

        logger.remove()
    except ImportError:
        pass
    nlp = medspacy.load()  # PyRuSH sentences, target matcher, ConText with its default rules
    rules = load_rules(__import__("radiolens.findings", fromlist=["get_schema"]).get_schema(
        "chestxray14"))
    targets = []
    for m in rules.mentions:
        if m.kind == "negative" or m.phrase.startswith("re:"):
            continue  # ConText has no "phrase states absence"; regex phrases are radiolens-only
        words = m.phrase.lower().replace("-", " ").split()
        if "..." in words:
            pattern = []
            for w in words:
                pattern.append({"IS_PUNCT": False, "OP": "{0,4}"} if w == "..." else {"LOWER": w})
            targets.append(TargetRule(m.phrase, m.finding, pattern=pattern))
        else:
            targets.append(TargetRule(" ".join(words), m.finding))
    nlp.get_pipe("medspacy_target_matcher").add(targets)
    return nlp


def run_medspacy(reports: list[dict], repeat: int) -> tuple[dict, float]:  # pragma: no cover
    nlp = medspacy_pipeline()
    texts = [f"{r['findings']}\n\n{r['impression']}".strip() for r in reports]
    best = float("inf")
    docs = []
    for _ in range(repeat):
        t = time.perf_counter()
        docs = list(nlp.pipe(texts))
        best = min(best, time.perf_counter() - t)
    strength = {Certainty.POSITIVE: 3, Certainty.UNCERTAIN: 2, Certainty.NEGATIVE: 1}
    pred = {}
    for r, doc in zip(reports, docs, strict=True):
        labels: dict[str, Certainty | None] = dict.fromkeys([*CHESTXRAY14_FINDINGS, OTHER])
        for ent in doc.ents:
            if ent._.is_negated:
                v = Certainty.NEGATIVE
            elif ent._.is_uncertain or ent._.is_hypothetical:
                v = Certainty.UNCERTAIN
            else:
                v = Certainty.POSITIVE
            old = labels.get(ent.label_)
            if old is None or strength[v] > strength[old]:
                labels[ent.label_] = v
        blocked = any(v in (Certainty.POSITIVE, Certainty.UNCERTAIN) for v in labels.values())
        labels["No Finding"] = Certainty.NEGATIVE if blocked else Certainty.POSITIVE
        pred[r["id"]] = labels
    return pred, len(reports) / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reports", type=Path, default=DEFAULT_REPORTS)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not args.reports.exists():
        print(f"no such file: {args.reports}", file=sys.stderr)
        return 2
    reports = load(args.reports)
    gold = gold_table(reports)
    print(f"radiolens {__version__} labeller on {len(reports)} OpenI reports "
          f"({args.reports.name}); python {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    rows = []
    pred, rate = run_radiolens(reports, args.repeat)
    rows.append(("radiolens", scores(pred, gold), rate))
    try:
        import medspacy  # noqa: F401
    except ImportError:
        print("medspaCy is not installed here: run `make bench-labeller` for the side-by-side")
    else:
        mpred, mrate = run_medspacy(reports, max(1, args.repeat // 2))
        rows.append(("medspaCy ConText", scores(mpred, gold), mrate))
    sets = list(rows[0][1])
    print(f"\n{'labeller':<18} {'reports/s':>10} | " + " | ".join(f"{s + ' P/R/F1':>27}"
                                                               for s in sets))
    for name, sc, r in rows:
        cells = " | ".join(f"{sc[s][0]:>7.3f} {sc[s][1]:>7.3f} {sc[s][2]:>7.3f}".rjust(27)
                           for s in sets)
        print(f"{name:<18} {r:>10.0f} | {cells}")
    if len(rows) == 2:
        (_, a, ra), (_, b, rb) = rows
        print(f"\nratio radiolens / medspaCy: speed {ra / rb:.1f}x; micro-F1 "
              + ", ".join(f"{s} {a[s][2] / b[s][2]:.2f}x" for s in sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
