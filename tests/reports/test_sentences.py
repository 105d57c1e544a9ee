"""Sentence-level cases, one per line of sentences.csv: every rule of the labeller."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from radiolens import ReportLabeler
from radiolens.findings import CHESTXRAY14_FINDINGS

CASES = list(csv.DictReader((Path(__file__).parent / "sentences.csv").open(encoding="utf-8")))


def _expected(text: str) -> dict[str, int]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, value = part.split("=")
        out[name.strip()] = int(value)
    return out


@pytest.fixture(scope="module")
def labeler() -> ReportLabeler:
    return ReportLabeler().load()


@pytest.mark.parametrize("case", CASES, ids=[c["rule"] for c in CASES])
def test_sentence(labeler: ReportLabeler, case: dict[str, str]) -> None:
    expected = _expected(case["expected"])
    result = labeler.label(case["sentence"])
    got = {k: (None if v is None else int(v)) for k, v in result.labels.items()}
    for finding, value in expected.items():
        assert got[finding] == value, (finding, case["sentence"], result.decisive(finding))
    for finding in CHESTXRAY14_FINDINGS:
        if finding not in expected:
            assert got[finding] is None, (finding, case["sentence"], result.decisive(finding))


def test_cases_cover_every_rule_kind(labeler: ReportLabeler) -> None:
    rules = {ev.rule for c in CASES for ev in labeler.label(c["sentence"]).evidence}
    assert {"affirmed", "negation", "uncertainty", "probable", "hypothetical",
            "negative phrase", "uncertain phrase", "blocked", "no abnormality"} <= rules
