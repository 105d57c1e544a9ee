"""The report labeller: free text in, one label per finding out, with the evidence.

Example:
    >>> from radiolens import label_report
    >>> result = label_report("FINDINGS: Small left pleural effusion. No pneumothorax.")
    >>> result.labels["Effusion"], result.labels["Pneumothorax"], result.labels["No Finding"]
    (<Certainty.POSITIVE: 1>, <Certainty.NEGATIVE: 0>, <Certainty.NEGATIVE: 0>)
    >>> result.decisive("Pneumothorax").rule
    'negation'
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from radiolens.errors import ReportParseError
from radiolens.findings import Certainty, LabelSchema, format_label, get_schema
from radiolens.reports.context import RULE_CERTAINTY, ContextMatcher
from radiolens.reports.rules import RuleSet, load_rules
from radiolens.reports.text import (
    DEFAULT_LABEL_SECTIONS,
    KNOWN_SECTIONS,
    canonical_section,
    split_sections,
    split_sentences,
)

__all__ = ["Evidence", "ReportLabeler", "ReportLabels", "label_report"]

# When mentions disagree, the strongest certainty wins (the CheXpert aggregation).
_STRENGTH = {Certainty.POSITIVE: 3, Certainty.UNCERTAIN: 2, Certainty.NEGATIVE: 1}


class Evidence(NamedTuple):
    """Why a finding got its label: one mention in the report.

    Attributes:
        finding: the finding (or ``"Other abnormality"`` for abnormalities outside the
            schema, which only block ``No Finding``).
        label: what this mention says (1, 0 or -1).
        section: the report section it is in (``findings``, ``impression``, ...).
        sentence: the sentence, as written in the report.
        phrase: the words that named the finding, as written.
        rule: ``affirmed``, ``probable``, ``negation``, ``negative phrase``,
            ``uncertainty``, ``hypothetical``; for ``No Finding``: ``no abnormality``
            or ``blocked``.
        trigger: the trigger words that decided it, if any.
        decisive: True for the mention that set the finding's label.
    """

    finding: str
    label: Certainty
    section: str
    sentence: str
    phrase: str
    rule: str
    trigger: str | None = None
    decisive: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--evidence`` JSONL layout)."""
        return {
            "finding": self.finding, "label": int(self.label), "section": self.section,
            "sentence": self.sentence, "phrase": self.phrase, "rule": self.rule,
            "trigger": self.trigger, "decisive": self.decisive,
        }


@dataclass(frozen=True)
class ReportLabels:
    """The labels of one report and the evidence behind them.

    Attributes:
        labels: every column of the schema mapped to 1 / 0 / -1, or ``None`` when the
            report does not mention it.
        evidence: every mention found, in report order; ``decisive`` marks the deciding one.
        id: the report id, when known.
    """

    labels: dict[str, Certainty | None]
    evidence: tuple[Evidence, ...] = ()
    id: str | None = None

    def decisive(self, finding: str) -> Evidence | None:
        """The evidence that decided ``finding``, or ``None`` when it is not mentioned."""
        return next((e for e in self.evidence if e.finding == finding and e.decisive), None)

    def row(self, columns: Sequence[str]) -> list[str]:
        """Label values for ``columns`` as label-table strings (``1``, ``0``, ``-1``, ``""``)."""
        return [format_label(self.labels.get(c)) for c in columns]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: id, labels and evidence."""
        return {
            "id": self.id,
            "labels": {k: (None if v is None else int(v)) for k, v in self.labels.items()},
            "evidence": [e.to_dict() for e in self.evidence],
        }


class ReportLabeler:
    """Label radiology reports with findings, negation and uncertainty.

    Args:
        schema: ``"chestxray14"`` (default) or ``"chexpert"``, or a
            :class:`~radiolens.findings.LabelSchema`.
        rules: extra rules files (YAML) that add findings, synonyms or triggers.
        sections: sections to label; by default ``findings`` and ``impression``
            (and report text without headers). Indication, history and comparison are
            never labelled unless named here.

    The constructor only stores its arguments; rules are read and compiled by
    :meth:`load`, which :meth:`label` calls on first use.

    Example:
        >>> labeler = ReportLabeler()
        >>> labeler.label("Heart size is normal. Possible right lower lobe pneumonia.").labels[
        ...     "Pneumonia"]
        <Certainty.UNCERTAIN: -1>
    """

    def __init__(self, schema: str | LabelSchema = "chestxray14",
                 rules: Sequence[str | Path] = (),
                 sections: Iterable[str] = DEFAULT_LABEL_SECTIONS) -> None:
        self.schema = schema
        self.rules = tuple(rules)
        self.sections = frozenset(canonical_section(s) for s in sections)
        self.schema_: LabelSchema | None = None
        self.rules_: RuleSet | None = None
        self.matcher_: ContextMatcher | None = None

    def load(self) -> ReportLabeler:
        """Read and compile the rules. Returns ``self``."""
        schema = get_schema(self.schema) if isinstance(self.schema, str) else self.schema
        rules = load_rules(schema, self.rules)
        self.schema_ = schema.with_findings(f for f in rules.findings if f not in schema.columns)
        self.rules_ = rules
        self.matcher_ = ContextMatcher(rules)
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """The label columns this labeller writes, in order."""
        if self.schema_ is None:
            self.load()
        assert self.schema_ is not None
        return self.schema_.columns

    def label(self, report: str | Mapping[str, str | None], id: str | None = None) -> ReportLabels:
        """Label one report.

        Args:
            report: the report text (sections found from headers such as ``FINDINGS:``),
                or a mapping of section or field name to text, such as
                ``{"findings": ..., "impression": ...}``.
            id: carried into the result.

        Raises:
            ReportParseError: the report has no text in the sections to label.
        """
        if self.matcher_ is None:
            self.load()
        assert self.matcher_ is not None and self.schema_ is not None
        matcher, schema = self.matcher_, self.schema_

        parts = [("findings", report)] if isinstance(report, str) else list(report.items())
        evidence: list[_Raw] = []
        labelled_text = False
        for field_name, text in parts:
            if not text:
                continue
            if not isinstance(text, str):
                raise ReportParseError(
                    f"field {field_name!r} holds {type(text).__name__}, not text")
            default = canonical_section(field_name)
            if default not in KNOWN_SECTIONS:  # a free-text column such as "notes"
                default = "findings"
            for section in split_sections(text, default=default):
                if section.name not in self.sections:
                    continue
                labelled_text = labelled_text or bool(section.text.strip())
                evidence.extend(self._label_section(matcher, section.name, section.text))
        if not labelled_text:
            wanted = ", ".join(sorted(self.sections))
            raise ReportParseError(f"the report has no text to label (looked in: {wanted})")
        return self._aggregate(schema, evidence, id)

    def _label_section(self, matcher: ContextMatcher, name: str, text: str) -> list[_Raw]:
        lower = _lower_same_length(text)
        mentions = matcher.find_mentions(lower)
        if not mentions:
            return []
        triggers = matcher.find_triggers(lower, mentions=mentions)
        out: list[_Raw] = []
        i = j = 0
        for s_start, s_end in split_sentences(text):
            in_sentence = []
            while i < len(mentions) and mentions[i].start < s_end:
                if mentions[i].start >= s_start and mentions[i].end <= s_end:
                    in_sentence.append(mentions[i])
                i += 1
            while j < len(triggers) and triggers[j].start < s_start:
                j += 1
            if not in_sentence:
                continue
            k = j
            while k < len(triggers) and triggers[k].end <= s_end:
                k += 1
            sentence = text[s_start:s_end]
            for m in matcher.decide(lower, in_sentence, s_start, s_end, triggers[j:k]):
                out.append((m.finding, RULE_CERTAINTY[m.rule], name, sentence,
                            text[m.start:m.end], m.rule, m.trigger))
            if i >= len(mentions):
                break
        return out

    @staticmethod
    def _aggregate(schema: LabelSchema, raw: list[_Raw], id: str | None) -> ReportLabels:
        best: dict[str, int] = {}
        for k, item in enumerate(raw):
            j = best.get(item[0])
            if j is None or _STRENGTH[item[1]] > _STRENGTH[raw[j][1]]:
                best[item[0]] = k
        decisive = set(best.values())
        evidence = [Evidence(*item, k in decisive) for k, item in enumerate(raw)]
        labels: dict[str, Certainty | None] = dict.fromkeys(schema.columns)
        for finding, k in best.items():
            if finding in labels:
                labels[finding] = raw[k][1]
        if schema.no_finding is not None:
            blocking = [evidence[k] for f, k in best.items()
                        if f != schema.no_finding and f not in schema.no_finding_ignores
                        and raw[k][1] is not Certainty.NEGATIVE]
            if blocking:
                labels[schema.no_finding] = Certainty.NEGATIVE
                first = blocking[0]
                evidence.append(Evidence(schema.no_finding, Certainty.NEGATIVE, first.section,
                                         first.sentence, first.phrase, "blocked",
                                         f"{first.finding} is {_WORD[first.label]}", True))
            else:
                labels[schema.no_finding] = Certainty.POSITIVE
                evidence.append(Evidence(schema.no_finding, Certainty.POSITIVE, "", "", "",
                                         "no abnormality", None, True))
        return ReportLabels(labels, tuple(evidence), id)


# (finding, label, section, sentence, phrase, rule, trigger)
_Raw = tuple[str, Certainty, str, str, str, str, "str | None"]

_WORD = {Certainty.POSITIVE: "positive", Certainty.UNCERTAIN: "uncertain",
         Certainty.NEGATIVE: "negative"}


def _lower_same_length(text: str) -> str:
    lower = text.lower()
    if len(lower) == len(text):
        return lower
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


@functools.lru_cache(maxsize=8)
def _default_labeler(schema: str) -> ReportLabeler:
    return ReportLabeler(schema).load()


def label_report(report: str | Mapping[str, str | None], schema: str = "chestxray14",
                 rules: Sequence[str | Path] = ()) -> ReportLabels:
    """Label one report with the packaged rules (plus ``rules`` files, if given).

    See :class:`ReportLabeler` for the arguments; for many reports, build one
    :class:`ReportLabeler` and call its :meth:`~ReportLabeler.label` instead.
    """
    labeler = _default_labeler(schema) if not rules else ReportLabeler(schema, rules).load()
    return labeler.label(report)

