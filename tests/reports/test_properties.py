"""Hypothesis properties of the labeller: invariants that hold for any input."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radiolens import Certainty, ReportLabeler
from radiolens.findings import CHESTXRAY14_FINDINGS
from radiolens.reports.rules import OTHER

LABELER = ReportLabeler().load()
assert LABELER.rules_ is not None
PHRASES = sorted({(m.phrase, m.finding) for m in LABELER.rules_.mentions
                  if m.kind == "mention" and m.finding in CHESTXRAY14_FINDINGS
                  and "..." not in m.phrase and not m.phrase.startswith("re:")})
SENTENCES = [row["sentence"] for row in csv.DictReader(
    (Path(__file__).parent / "sentences.csv").open(encoding="utf-8"))]
SETTINGS = settings(max_examples=int(os.environ.get("RADIOLENS_HYPOTHESIS_EXAMPLES", "150")),
                    deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
MODIFIERS = ["", "small ", "large ", "left ", "focal ", "right basilar ", "mild ", "acute "]
NEGATIONS = ["No", "no", "There is no", "Without", "No evidence of", "Negative for",
             "No definite", "No XXXX"]


def test_negating_a_lone_finding_never_makes_it_positive() -> None:
    # every phrase with every negation and modifier: the space is small enough to sweep
    wrong = [f"{neg} {mod}{phrase}." for phrase, finding in PHRASES for neg in NEGATIONS
             for mod in MODIFIERS
             if LABELER.label(f"{neg} {mod}{phrase}.").labels[finding] is Certainty.POSITIVE]
    assert wrong == []


def test_a_lone_affirmed_finding_is_positive() -> None:
    wrong = []
    for phrase, finding in PHRASES:
        for mod in MODIFIERS:
            labels = LABELER.label(f"There is {mod}{phrase}.").labels
            if (labels[finding], labels["No Finding"]) != (Certainty.POSITIVE,
                                                            Certainty.NEGATIVE):
                wrong.append(f"There is {mod}{phrase}.")
    assert wrong == []


def _recase(text: str, flips: list[bool]) -> str:
    return "".join(c.upper() if f else c.lower() for c, f in zip(text, flips * len(text),
                                                                  strict=False))


@SETTINGS
@given(st.sampled_from(SENTENCES), st.lists(st.booleans(), min_size=1, max_size=7),
       st.sampled_from([" ", "  ", "\t", " \n ", "   "]))
def test_labels_do_not_depend_on_case_or_whitespace(sentence: str, flips: list[bool],
                                                    space: str) -> None:
    base = LABELER.label(sentence).labels
    variant = space + _recase(sentence, flips).replace(" ", space) + space
    assert LABELER.label(variant).labels == base


@SETTINGS
@given(st.sampled_from(SENTENCES), st.sampled_from(SENTENCES))
def test_indication_never_changes_the_labels(indication: str, findings: str) -> None:
    plain = LABELER.label({"findings": findings}).labels
    assert LABELER.label({"indication": indication, "findings": findings}).labels == plain


@SETTINGS
@given(st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=6))
def test_no_finding_is_positive_only_when_nothing_is_positive_or_uncertain(
        sentences: list[str]) -> None:
    result = LABELER.label(" ".join(s if s.endswith(".") else s + "." for s in sentences))
    others = [e.label for e in result.evidence
              if e.decisive and e.finding in (*CHESTXRAY14_FINDINGS, OTHER)]
    blocked = any(v is not Certainty.NEGATIVE for v in others)
    assert (result.labels["No Finding"] is Certainty.POSITIVE) == (not blocked)


@SETTINGS
@given(st.text(min_size=1, max_size=300))
def test_any_text_gives_valid_labels_or_a_clear_error(text: str) -> None:
    from radiolens.errors import ReportParseError

    try:
        result = LABELER.label(text)
    except ReportParseError:
        assert not text.strip() or ":" in text  # only empty text or header-only text
        return
    assert set(result.labels) == set(LABELER.columns)
    assert all(v is None or v in Certainty for v in result.labels.values())
