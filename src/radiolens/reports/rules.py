"""Labeller rules: vocabularies and context triggers, read from YAML files.

The packaged rules are ``data/context.yaml`` (negation, uncertainty, ... triggers) and
one vocabulary per label schema (``data/chestxray14.yaml``, ``data/chexpert.yaml``).
A user adds findings, synonyms or triggers with a rules file of the same shape
(``radiolens label --rules my_rules.yaml``); no code is needed::

    findings:
      Pneumonia:
        mentions: [lobar pneumonia, bronchopneumonia]
      Rib Fracture:              # a new finding gets a new column
        mentions: [rib fracture, fractured rib]
        negative: [ribs are intact]       # the phrase itself says "absent"
        uncertain: [rib irregularity]     # names something only like the finding
    triggers:
      negation:
        pre: [no radiographic sign of]

A phrase listed in a later file replaces the packaged meaning of the same phrase (for
example, moving "likely" from ``probable`` to ``uncertainty``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from radiolens._suggest import did_you_mean
from radiolens.errors import RulesError
from radiolens.findings import LabelSchema

__all__ = [
    "CATEGORIES",
    "DIRECTIONS",
    "OTHER",
    "MentionRule",
    "RuleSet",
    "TriggerRule",
    "load_rules",
    "phrase_pattern",
]

#: Trigger categories, in the order used to break ties between equally near triggers.
CATEGORIES: tuple[str, ...] = ("negation", "uncertainty", "hypothetical", "probable")
DIRECTIONS: tuple[str, ...] = ("pre", "post")

#: Pseudo-finding for abnormalities outside the schema; it only blocks "No Finding".
OTHER = "Other abnormality"

_TOP_KEYS = {"version", "schema", "description", "findings", "other", "triggers", "pseudo",
             "terminators", "max_scope"}
_FINDING_KEYS = {"mentions", "negative", "uncertain", "description"}
GAP_WORDS = 4


@dataclass(frozen=True)
class MentionRule:
    """A phrase that names a finding.

    Attributes:
        phrase: the phrase as written in the rules file.
        finding: the finding it names (or :data:`OTHER`).
        kind: ``mention`` (context decides), ``negative`` (the phrase states absence:
            "normal heart size") or ``uncertain`` (the phrase names something only like
            the finding: "nodular opacity").
        source: the rules file it came from.
    """

    phrase: str
    finding: str
    kind: str = "mention"
    source: str = ""


@dataclass(frozen=True)
class TriggerRule:
    """A context phrase: a trigger (category + direction), a pseudo-trigger or a terminator.

    ``category`` is one of :data:`CATEGORIES`, or ``"pseudo"`` / ``"terminator"``, for
    which ``direction`` is ``""``.
    """

    phrase: str
    category: str
    direction: str = ""
    source: str = ""


@dataclass(frozen=True)
class RuleSet:
    """Everything the labeller matches, merged from the packaged and the user's files."""

    findings: tuple[str, ...]
    mentions: tuple[MentionRule, ...]
    triggers: tuple[TriggerRule, ...]
    max_scope: int
    sources: tuple[str, ...] = field(default_factory=tuple)


def phrase_pattern(phrase: str) -> tuple[str, bool]:
    """Translate a rules-file phrase into a regular expression over lower-case text.

    Returns the pattern and whether it is a plain literal (no gap, no ``re:``); literal
    phrases are matched through one shared, prefix-factored expression for speed.
    """
    if phrase.startswith("re:"):
        return f"(?i:{phrase[3:]})", False
    tokens = normalise_phrase(phrase).split(" ")
    parts: list[str] = []
    literal = True
    for i, tok in enumerate(tokens):
        if tok == "...":
            literal = False
            parts.append(rf"(?:[^\s.;:!?]+\s+){{0,{GAP_WORDS}}}?")
            continue
        parts.append(re.escape(tok))
        if i < len(tokens) - 1 and tokens[i + 1] != "...":
            parts.append(r"[\s\-]+")
        elif i < len(tokens) - 1:
            parts.append(r"\s+")
    return "".join(parts), literal


def normalise_phrase(text: str) -> str:
    """Lower-case ``text`` and turn hyphens and runs of white space into single spaces."""
    return " ".join(re.split(r"[\s\-]+", text.lower().strip()))


def load_rules(schema: LabelSchema, extra: Sequence[str | Path] = ()) -> RuleSet:
    """Load the packaged context rules and vocabulary for ``schema``, then ``extra`` files.

    Raises:
        RulesError: a file is missing, is not YAML, or has unknown keys or bad phrases.
    """
    docs: list[tuple[str, Mapping[str, Any]]] = [
        ("context.yaml", _read_packaged("context.yaml")),
        (schema.vocabulary, _read_packaged(schema.vocabulary)),
    ]
    for path in extra:
        docs.append((str(path), _read_user_file(Path(path))))

    findings = list(schema.findings)
    mentions: list[MentionRule] = []
    triggers: dict[str, list[TriggerRule]] = {}
    max_scope = 7
    for source, doc in docs:
        _check_keys(doc, _TOP_KEYS, source, "top level")
        if "max_scope" in doc:
            max_scope = _positive_int(doc["max_scope"], source, "max_scope")
        for name, entry in _mapping(doc.get("findings", {}), source, "findings").items():
            name = str(name)
            if name == schema.no_finding:
                raise RulesError(f"{source}: {name!r} is computed from the other findings "
                                 "and cannot have mentions")
            entry = _mapping(entry, source, f"findings.{name}")
            _check_keys(entry, _FINDING_KEYS, source, f"findings.{name}")
            if name not in findings:
                findings.append(name)
            for kind in ("mentions", "negative", "uncertain"):
                for phrase in _phrases(entry.get(kind, []), source, f"findings.{name}.{kind}"):
                    mentions.append(MentionRule(phrase, name, kind.rstrip("s"), source))
        other = _mapping(doc.get("other", {}), source, "other")
        _check_keys(other, {"mentions", "description"}, source, "other")
        for phrase in _phrases(other.get("mentions", []), source, "other.mentions"):
            mentions.append(MentionRule(phrase, OTHER, "mention", source))
        for rule in _trigger_rules(doc, source):
            key = normalise_phrase(rule.phrase)
            same_file = [r for r in triggers.get(key, []) if r.source == source]
            for r in same_file:
                if r.category != rule.category:
                    raise RulesError(f"{source}: {rule.phrase!r} is listed both as {r.category} "
                                     f"and as {rule.category}; keep one")
            # a phrase listed again in a later file replaces its earlier meaning
            triggers[key] = [*same_file, rule]
    return RuleSet(tuple(findings), tuple(mentions),
                   tuple(r for rules in triggers.values() for r in rules), max_scope,
                   tuple(s for s, _ in docs))


def _trigger_rules(doc: Mapping[str, Any], source: str) -> Iterable[TriggerRule]:
    groups = _mapping(doc.get("triggers", {}), source, "triggers")
    for category, by_dir in groups.items():
        if category not in CATEGORIES:
            raise RulesError(f"{source}: unknown trigger category {category!r}"
                             f"{did_you_mean(str(category), CATEGORIES)}; "
                             f"use one of {', '.join(CATEGORIES)}")
        by_dir = _mapping(by_dir, source, f"triggers.{category}")
        for direction, phrases in by_dir.items():
            if direction not in DIRECTIONS:
                raise RulesError(f"{source}: triggers.{category} has {direction!r}"
                                 f"{did_you_mean(str(direction), DIRECTIONS)}; use 'pre' "
                                 "(governs the words after it) or 'post' (the words before)")
            for phrase in _phrases(phrases, source, f"triggers.{category}.{direction}"):
                yield TriggerRule(phrase, category, direction, source)
    for phrase in _phrases(doc.get("pseudo", []), source, "pseudo"):
        yield TriggerRule(phrase, "pseudo", "", source)
    for phrase in _phrases(doc.get("terminators", []), source, "terminators"):
        yield TriggerRule(phrase, "terminator", "", source)


def _read_packaged(name: str) -> Mapping[str, Any]:
    text = resources.files("radiolens.reports").joinpath("data", name).read_text("utf-8")
    return _parse_yaml(text, f"packaged {name}")


def _read_user_file(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise RulesError(f"rules file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read rules file {str(path)!r}: {exc}") from None
    return _parse_yaml(text, str(path))


class _RulesLoader(yaml.SafeLoader):
    """Safe YAML loader where only ``true``/``false`` are booleans.

    Plain YAML 1.1 reads ``no``, ``yes``, ``on`` and ``off`` as booleans, which would
    turn the negation trigger ``no`` into ``False``.
    """


_RulesLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_RulesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _parse_yaml(text: str, source: str) -> Mapping[str, Any]:
    try:
        doc = yaml.load(text, Loader=_RulesLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", exc)
        raise RulesError(f"{source}{where}: not valid YAML ({problem})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise RulesError(f"{source}: a rules file must be a mapping (keys such as 'findings' "
                         "and 'triggers'), not a list or a single value")
    return doc


def _check_keys(doc: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    for key in doc:
        if key not in allowed:
            raise RulesError(f"{source}: unknown key {key!r} at {where}"
                             f"{did_you_mean(str(key), allowed)}")


def _mapping(value: Any, source: str, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RulesError(f"{source}: {where} must be a mapping, not {type(value).__name__}")
    return value


def _positive_int(value: Any, source: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RulesError(f"{source}: {where} must be a positive whole number, not {value!r}")
    return value


def _phrases(value: Any, source: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RulesError(f"{source}: {where} must be a list of phrases")
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int | float) or not str(
                item).strip():
            raise RulesError(f"{source}: {where} has an empty or non-text phrase {item!r}")
        phrase = str(item).strip()
        if phrase.startswith("re:"):
            try:
                re.compile(phrase[3:])
            except re.error as exc:
                raise RulesError(f"{source}: {where}: bad regular expression {phrase[3:]!r}: "
                                 f"{exc}") from None
        elif normalise_phrase(phrase) in ("...", "") or normalise_phrase(phrase).startswith(
                "... ") or normalise_phrase(phrase).endswith(" ..."):
            raise RulesError(f"{source}: {where}: {phrase!r} must not start or end with '...'")
        out.append(phrase)
    return out
