"""Finding mentions and their context (negation, uncertainty) in report sentences.

A :class:`ContextMatcher` is compiled once from a :class:`~radiolens.reports.rules.RuleSet`.
All literal phrases are merged into one prefix-factored regular expression (a trie), so
matching costs about the same with 50 phrases or 5,000. For each mention it then finds
the triggers whose scope reaches it and lets the nearest one decide.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from radiolens.findings import Certainty
from radiolens.reports.rules import (
    CATEGORIES,
    GAP_WORDS,
    RuleSet,
    normalise_phrase,
    phrase_pattern,
)

__all__ = ["ContextMatcher", "MentionMatch"]

#: Certainty given by each deciding rule.
RULE_CERTAINTY: dict[str, Certainty] = {
    "affirmed": Certainty.POSITIVE,
    "probable": Certainty.POSITIVE,
    "negation": Certainty.NEGATIVE,
    "negative phrase": Certainty.NEGATIVE,
    "uncertainty": Certainty.UNCERTAIN,
    "hypothetical": Certainty.UNCERTAIN,
    "uncertain phrase": Certainty.UNCERTAIN,
}

# Words that never count towards a trigger's reach: list glue and de-identification tokens.
_FREE_WORDS = frozenset({"or", "and", "nor", "as", "well", "either", "xxxx", "of", "the", "a",
                         "an", "any", "to", "in"})
_WORD = re.compile(r"[^\W_]+")
_FIRST_WORD = re.compile(r"[^\s\-]+")
_PRIORITY = {c: i for i, c in enumerate(CATEGORIES)}


class MentionMatch(NamedTuple):
    """One mention of a finding in a sentence and what decided its certainty.

    Attributes:
        finding: the finding named.
        start, end: character offsets of the phrase in the sentence.
        rule: ``affirmed``, ``probable``, ``negation``, ``negative phrase``,
            ``uncertainty``, ``hypothetical`` or ``uncertain phrase``.
        trigger: the trigger phrase as written in the sentence, or ``None``.
    """

    finding: str
    start: int
    end: int
    rule: str
    trigger: str | None = None

    @property
    def certainty(self) -> Certainty:
        """The label value this mention gives its finding."""
        return RULE_CERTAINTY[self.rule]


class _Hit(NamedTuple):
    start: int
    end: int
    targets: tuple[tuple[str, str, str], ...]  # (kind, finding or category, direction)


class _PhraseIndex:
    """Matches many phrases at once and says which rule entries each match belongs to.

    Plain phrases and phrases with "..." gaps share one prefix-factored expression;
    ``re:`` phrases are separate alternatives, tried first.
    """

    def __init__(self, entries: Iterable[tuple[str, tuple[str, str, str]]]) -> None:
        literal: dict[str, list[tuple[str, str, str]]] = {}
        gapped: dict[str, list[tuple[str, str, str]]] = {}
        regexes: dict[str, list[tuple[str, str, str]]] = {}
        for phrase, target in entries:
            if phrase.startswith("re:"):
                table, key = regexes, phrase_pattern(phrase)[0]
            else:
                key = normalise_phrase(phrase)
                table = gapped if "..." in key.split(" ") else literal
            if target not in table.setdefault(key, []):
                table[key].append(target)
        self._literal = {k: tuple(v) for k, v in literal.items()}
        # gap phrases are told apart by trying each one that starts with the matched word
        self._gapped: dict[str, list[tuple[re.Pattern[str], tuple[tuple[str, str, str], ...]]]] = {}
        for k, v in gapped.items():
            self._gapped.setdefault(k.split(" ")[0], []).append(
                (re.compile(phrase_pattern(k)[0]), tuple(v)))
        self._regexes = [tuple(v) for v in regexes.values()]
        alternatives = [f"(?P<p{i}>{p})" for i, p in enumerate(regexes)]
        trie_keys = [*literal, *(k.replace(" ... ", _GAP) for k in gapped)]
        if trie_keys:
            alternatives.append(rf"(?<!\w)(?P<lit>{_trie_regex(trie_keys)})(?!\w)")
        self.regex = re.compile("|".join(alternatives) if alternatives else r"(?!x)x")

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterable[_Hit]:
        for m in self.regex.finditer(text, pos, len(text) if endpos is None else endpos):
            if m.start() == m.end():
                continue
            group = m.lastgroup
            if group == "lit":
                found = m.group()
                targets = self._literal.get(found)
                if targets is None:
                    targets = self._literal.get(normalise_phrase(found))
                if targets is None:
                    first = _FIRST_WORD.match(found)
                    candidates = self._gapped.get(first.group() if first else "", ())
                    targets = next((t for rx, t in candidates if rx.fullmatch(found)), None)
                    if targets is None:
                        continue
            else:
                assert group is not None
                targets = self._regexes[int(group[1:])]
            yield _Hit(m.start(), m.end(), targets)


_GAP = "\x00"
_GAP_REGEX = r"\s+(?:[^\s.;:!?]+\s+){0," + str(GAP_WORDS) + "}?"


def _trie_regex(phrases: Iterable[str]) -> str:
    """One regular expression for many phrases, with shared prefixes factored out.

    Longer continuations are tried first, so the longest phrase at a position wins; a
    "..." gap is tried after the plain continuations.
    """
    root: dict[str, dict] = {}
    for phrase in phrases:
        node = root
        for ch in phrase:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, dict]) -> str:
        ends_here = "" in node
        branches = []
        for ch in sorted((k for k in node if k), key=lambda k: (k == _GAP, k)):
            if ch == _GAP:
                head = _GAP_REGEX
            elif ch == " ":
                head = r"[\s\-]+"
            else:
                head = re.escape(ch)
            branches.append(head + build(node[ch]))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends_here else body

    return build(root)


class ContextMatcher:
    """Compiled mention and context rules.

    Example:
        >>> from radiolens.findings import get_schema
        >>> from radiolens.reports.rules import load_rules
        >>> m = ContextMatcher(load_rules(get_schema("chestxray14")))
        >>> [(x.finding, x.rule) for x in m.analyse("no effusion or pneumothorax")]
        [('Effusion', 'negation'), ('Pneumothorax', 'negation')]
    """

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.max_scope = rules.max_scope
        self._mentions = _PhraseIndex(
            (m.phrase, (m.kind, m.finding, ""))
            for m in rules.mentions
        )
        self._triggers = _PhraseIndex(
            (t.phrase, (t.category, t.category, t.direction)) for t in rules.triggers
        )

    def find_mentions(self, text: str, start: int = 0, end: int | None = None) -> list[_Hit]:
        """Every mention in ``text[start:end]`` (lower case), left to right."""
        return list(self._mentions.finditer(text, start, end))

    def analyse(self, sentence: str) -> list[MentionMatch]:
        """Decide every mention in one lower-case sentence."""
        return self.decide(sentence, self.find_mentions(sentence), 0, len(sentence))

    def decide(self, text: str, mentions: Sequence[_Hit], start: int, end: int,
               triggers: Sequence[_Hit] | None = None) -> list[MentionMatch]:
        """Decide ``mentions`` found in the sentence ``text[start:end]``.

        ``triggers`` are the sentence's triggers when the caller already found them
        (:meth:`find_triggers`). Offsets in the result are relative to ``text``.
        """
        if not mentions:
            return []
        if triggers is None:
            triggers = self.find_triggers(text, start, end, mentions)
        terminators = [t.start for t in triggers if t.targets[0][0] == "terminator"]
        triggers = [t for t in triggers if t.targets[0][0] != "terminator"]
        counter = _WordCounter(text, mentions)
        out: list[MentionMatch] = []
        for mention in mentions:
            rule, trigger = self._decide_one(mention, triggers, terminators, counter)
            said = None if trigger is None else text[trigger.start:trigger.end]
            for kind, finding, _ in mention.targets:
                if kind == "negative":
                    out.append(MentionMatch(finding, mention.start, mention.end, "negative phrase"))
                elif kind == "uncertain" and rule in ("affirmed", "probable"):
                    out.append(MentionMatch(finding, mention.start, mention.end, "uncertain phrase",
                                            said))
                else:
                    out.append(MentionMatch(finding, mention.start, mention.end, rule, said))
        return out

    def find_triggers(self, text: str, start: int = 0, end: int | None = None,
                      mentions: Sequence[_Hit] = ()) -> list[_Hit]:
        """Triggers and terminators in ``text[start:end]``; pseudo-triggers are dropped.

        A pseudo-trigger that runs into a finding phrase ("no increase" in "no *increase
        in heart size*") does not hide the trigger before the phrase: the text up to the
        phrase is searched again without it, so "no" still negates.
        """
        starts = sorted(m.start for m in mentions)
        out: list[_Hit] = []
        for t in self._triggers.finditer(text, start, end):
            if t.targets[0][0] != "pseudo":
                out.append(t)
                continue
            i = bisect.bisect_right(starts, t.start)
            if i < len(starts) and starts[i] < t.end:
                out.extend(h for h in self._triggers.finditer(text, t.start, starts[i])
                           if h.targets[0][0] != "pseudo")
        return out

    def _decide_one(self, mention: _Hit, triggers: Sequence[_Hit], terminators: Sequence[int],
                    counter: _WordCounter) -> tuple[str, _Hit | None]:
        """The rule and trigger that decide one mention.

        A trigger inside the phrase ("heart is *not* enlarged", "*borderline* heart size")
        sets the phrase's own meaning; the nearest trigger outside it that reaches it then
        decides, except that a "probable" trigger outside never overrides the phrase's own
        meaning or a hedge ("may represent atelectasis versus edema" stays uncertain).
        """
        inside: tuple[int, str, _Hit] | None = None
        best: tuple[int, int, str, _Hit] | None = None
        hedge: tuple[int, int, str, _Hit] | None = None
        for trig in triggers:
            for category, _, direction in trig.targets:
                if mention.start <= trig.start and trig.end <= mention.end:
                    if inside is None or _PRIORITY[category] < inside[0]:
                        inside = (_PRIORITY[category], category, trig)
                    continue
                if direction == "pre" and trig.end <= mention.start:
                    if _blocked(terminators, trig.end, mention.start):
                        continue
                    distance = counter.count(trig.end, mention.start)
                elif direction == "post" and trig.start >= mention.end:
                    if _blocked(terminators, mention.end, trig.start):
                        continue
                    distance = counter.count(mention.end, trig.start)
                else:
                    continue
                if distance > self.max_scope:
                    continue
                key = (distance, _PRIORITY[category], category, trig)
                if best is None or key[:2] < best[:2]:
                    best = key
                if category == "uncertainty" and (hedge is None or key[:2] < hedge[:2]):
                    hedge = key
        if best is not None and best[2] == "probable" and hedge is not None:
            best = hedge
        if best is not None and (best[2] != "probable" or inside is None):
            return best[2], best[3]
        if inside is not None:
            return inside[1], inside[2]
        return "affirmed", None


def _blocked(terminators: Sequence[int], start: int, end: int) -> bool:
    i = bisect.bisect_left(terminators, start)
    return i < len(terminators) and terminators[i] < end


class _WordCounter:
    """Counts the words between two offsets that limit a trigger's reach.

    Words inside mentions, list glue ("or", "and") and ``XXXX`` de-identification
    tokens are free, so "no effusion, pneumothorax, or focal airspace consolidation"
    keeps every finding in the scope of "no".
    """

    def __init__(self, text: str, mentions: Sequence[_Hit]) -> None:
        self._text = text
        self._spans = [(h.start, h.end) for h in mentions]

    def count(self, start: int, end: int) -> int:
        n = 0
        for m in _WORD.finditer(self._text, start, end):
            if m.group() in _FREE_WORDS:
                continue
            s = m.start()
            if any(a <= s < b for a, b in self._spans):
                continue
            n += 1
        return n
