"""Score a label table against a gold standard (``radiolens label-eval``).

Counts are plain integers (no numpy), so this works in the core install. Uncertain
labels (-1) are counted as negative or as positive, on both sides, as the caller asks;
blanks count as negative.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from radiolens._suggest import did_you_mean
from radiolens.errors import InputFormatError
from radiolens.findings import Certainty, parse_label

__all__ = [
    "CHEXPERT_TO_CHESTXRAY14",
    "FindingScore",
    "LabelEvaluation",
    "evaluate_labels",
    "format_evaluation",
    "map_schema_names",
    "read_label_table",
    "unannotated_findings",
]

LabelTable = dict[str, dict[str, Certainty | None]]

#: CheXpert observation -> the ChestX-ray14 finding it corresponds to, where one does.
#: Lung Lesion (Mass or Nodule), Lung Opacity, Pleural Other, Enlarged Cardiomediastinum,
#: Fracture and Support Devices have no single ChestX-ray14 counterpart. No Finding is
#: defined alike in both schemas except that CheXpert's ignores Support Devices.
CHEXPERT_TO_CHESTXRAY14: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Pleural Effusion": "Effusion",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "No Finding": "No Finding",
}


@dataclass(frozen=True)
class FindingScore:
    """Counts and scores for one finding (or an average, where counts are summed)."""

    finding: str
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float

    @property
    def support(self) -> int:
        """Gold positives."""
        return self.tp + self.fn


@dataclass(frozen=True)
class LabelEvaluation:
    """Per-finding scores with micro and macro averages."""

    per_finding: tuple[FindingScore, ...]
    micro: FindingScore
    macro: FindingScore
    reports: int
    uncertain_as: str
    missing_in_prediction: int
    unannotated: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "reports": self.reports, "uncertain_as": self.uncertain_as,
            "missing_in_prediction": self.missing_in_prediction,
            "not_annotated_in_gold": list(self.unannotated),
            "micro": asdict(self.micro), "macro": asdict(self.macro),
            "per_finding": [asdict(s) for s in self.per_finding],
        }


def read_label_table(path: str | Path, id_field: str = "id") -> tuple[list[str], LabelTable]:
    """Read a label table: a CSV with an id column and 1/0/-1/blank label columns, or a
    JSONL file whose objects carry ``id`` and a ``labels`` mapping (the OpenI gold).

    Raises:
        InputFormatError: the file is unreadable, lacks the id, or holds values other
            than 1, 0, -1 or blank (the message names the line).
    """
    p = Path(path)
    if not p.is_file():
        raise InputFormatError("no such file", str(p))
    if p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl_table(p, id_field)
    table: LabelTable = {}
    try:
        with p.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            if id_field not in header:
                raise InputFormatError(f"has no {id_field!r} column{did_you_mean(id_field, header)}"
                                       "; choose it with --id-field", str(p))
            columns = [h for h in header if h != id_field]
            for row in reader:
                table[row[id_field]] = {c: _value(row.get(c), p, reader.line_num, c)
                                        for c in columns}
    except UnicodeDecodeError:
        raise InputFormatError("is not UTF-8 text", str(p)) from None
    return columns, table


def _read_jsonl_table(p: Path, id_field: str) -> tuple[list[str], LabelTable]:
    table: LabelTable = {}
    columns: list[str] = []
    with p.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"not valid JSON ({exc.msg})", f"{p}:{lineno}") from None
            labels = obj.get("labels") if isinstance(obj, dict) else None
            if not isinstance(labels, dict) or id_field not in obj:
                raise InputFormatError(f"each line needs {id_field!r} and a 'labels' object",
                                       f"{p}:{lineno}")
            for c in labels:
                if c not in columns:
                    columns.append(c)
            table[str(obj[id_field])] = {c: _value(v, p, lineno, c) for c, v in labels.items()}
    return columns, table


def _value(v: object, p: Path, line: int, column: str) -> Certainty | None:
    try:
        return parse_label(v if v is None or isinstance(v, str | int | float) else str(v))
    except ValueError as exc:
        raise InputFormatError(f"column {column!r}: {exc}", f"{p}:{line}") from None


def _binary(v: Certainty | None, uncertain_positive: bool) -> bool:
    if v is Certainty.POSITIVE:
        return True
    return uncertain_positive and v is Certainty.UNCERTAIN


def _score(name: str, tp: int, fp: int, fn: int, tn: int) -> FindingScore:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return FindingScore(name, tp, fp, fn, tn, p, r, f)


def map_schema_names(columns: Sequence[str], table: LabelTable, target: Sequence[str]
                     ) -> tuple[list[str], LabelTable, dict[str, str]]:
    """Rename columns of ``table`` to the other schema's names found in ``target``.

    Uses :data:`CHEXPERT_TO_CHESTXRAY14` both ways, so a ``--schema chexpert`` table can
    be scored against ChestX-ray14-named gold (``Pleural Effusion`` as ``Effusion``) and
    the reverse. A column is renamed only when its own name is not in ``target``.

    Returns:
        The new column list, the renamed table and the renames made (old -> new).
    """
    both = {**CHEXPERT_TO_CHESTXRAY14, **{v: k for k, v in CHEXPERT_TO_CHESTXRAY14.items()}}
    wanted, present = set(target), set(columns)
    renames = {c: both[c] for c in columns if c not in wanted and both.get(c) in wanted
               and both[c] not in present}
    if not renames:
        return list(columns), table, {}
    new_table = {rid: {renames.get(c, c): v for c, v in row.items()} for rid, row in table.items()}
    return [renames.get(c, c) for c in columns], new_table, renames


def unannotated_findings(gold: Mapping[str, Mapping[str, Certainty | None]],
                         findings: Sequence[str]) -> list[str]:
    """The ``findings`` that no gold report marks positive (or uncertain).

    Such a column was never annotated by the gold's readers: its F1 is 0 by construction
    and it would only drag the macro average down.
    """
    marked = {Certainty.POSITIVE, Certainty.UNCERTAIN}
    return [f for f in findings if not any(g.get(f) in marked for g in gold.values())]


def evaluate_labels(pred: Mapping[str, Mapping[str, Certainty | None]],
                    gold: Mapping[str, Mapping[str, Certainty | None]],
                    findings: Sequence[str], uncertain_as: str = "negative", *,
                    unannotated: Sequence[str] = ()) -> LabelEvaluation:
    """Score ``pred`` against ``gold`` on ``findings``, over the gold's report ids.

    A gold report missing from ``pred`` counts as all-negative and is reported in
    ``missing_in_prediction``. Findings in ``unannotated`` are scored but left out of
    the micro and macro averages.
    """
    if uncertain_as not in ("negative", "positive"):
        raise ValueError("uncertain_as must be 'negative' or 'positive'")
    up = uncertain_as == "positive"
    empty: Mapping[str, Certainty | None] = {}
    missing = sum(1 for rid in gold if rid not in pred)
    scores = []
    for f in findings:
        tp = fp = fn = tn = 0
        for rid, g in gold.items():
            gv = _binary(g.get(f), up)
            pv = _binary(pred.get(rid, empty).get(f), up)
            if gv and pv:
                tp += 1
            elif pv:
                fp += 1
            elif gv:
                fn += 1
            else:
                tn += 1
        scores.append(_score(f, tp, fp, fn, tn))
    averaged = [s for s in scores if s.finding not in unannotated]
    micro = _score("micro", *(sum(getattr(s, k) for s in averaged)
                              for k in ("tp", "fp", "fn", "tn")))
    n = max(len(averaged), 1)
    macro = FindingScore("macro", micro.tp, micro.fp, micro.fn, micro.tn,
                         sum(s.precision for s in averaged) / n,
                         sum(s.recall for s in averaged) / n, sum(s.f1 for s in averaged) / n)
    kept = tuple(f for f in findings if f in unannotated)
    return LabelEvaluation(tuple(scores), micro, macro, len(gold), uncertain_as, missing, kept)


def format_evaluation(evaluations: Iterable[LabelEvaluation]) -> str:
    """A plain-text table: one row per finding, one column group per evaluation."""
    evs = list(evaluations)
    head = f"{'finding':<20} {'support':>7}"
    for ev in evs:
        tag = f"unc={ev.uncertain_as[:3]}"
        head += f" | {tag + ' P':>11} {'R':>6} {'F1':>6}"
    lines = [head, "-" * len(head)]
    rows = list(zip(*(ev.per_finding for ev in evs), strict=True))
    for group in rows:
        line = f"{group[0].finding:<20} {group[0].support:>7}"
        if group[0].finding in evs[0].unannotated:
            line += f" | not annotated in gold (no positive); {group[0].fp} predicted positive"
        else:
            for s in group:
                line += f" | {s.precision:>11.3f} {s.recall:>6.3f} {s.f1:>6.3f}"
        lines.append(line)
    lines.append("-" * len(head))
    for attr in ("micro", "macro"):
        line = f"{attr:<20} {getattr(evs[0], attr).support:>7}"
        for ev in evs:
            s = getattr(ev, attr)
            line += f" | {s.precision:>11.3f} {s.recall:>6.3f} {s.f1:>6.3f}"
        lines.append(line)
    return "\n".join(lines)
