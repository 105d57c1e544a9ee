"""Report structure: sections and sentences.

Radiology reports are written in sections (INDICATION, COMPARISON, FINDINGS,
IMPRESSION, ...). Only the sections that describe the image are labelled by default,
so that an indication of "rule out pneumonia" never makes Pneumonia positive.

Everything here is pure Python and works on character offsets into the original text,
so evidence can quote the report exactly as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_LABEL_SECTIONS",
    "KNOWN_SECTIONS",
    "SECTION_ALIASES",
    "Section",
    "canonical_section",
    "split_sections",
    "split_sentences",
]

#: Header spellings (lower case) and the canonical section they open.
SECTION_ALIASES: Mapping[str, str] = {
    "findings": "findings",
    "finding": "findings",
    "report": "findings",
    "body": "findings",
    "text": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "opinion": "impression",
    "indication": "indication",
    "indications": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "reason for study": "indication",
    "reason": "indication",
    "clinical indication": "indication",
    "clinical information": "history",
    "clinical history": "history",
    "history": "history",
    "clinical details": "history",
    "comparison": "comparison",
    "comparisons": "comparison",
    "prior": "comparison",
    "technique": "technique",
    "examination": "technique",
    "exam": "technique",
    "procedure": "technique",
    "recommendation": "recommendation",
    "recommendations": "recommendation",
    "notification": "notification",
}

#: Every canonical section name.
KNOWN_SECTIONS: frozenset[str] = frozenset(SECTION_ALIASES.values())

#: Sections labelled unless the caller asks for others.
DEFAULT_LABEL_SECTIONS: frozenset[str] = frozenset({"findings", "impression"})

_HEADER = re.compile(
    r"(?:(?<=^)|(?<=\n)|(?<=[.:;]\s)|(?<=[.:;]\s\s))[ \t]*(?P<name>"
    + "|".join(sorted((re.escape(k).replace(r"\ ", r"\s+") for k in SECTION_ALIASES),
                      key=len, reverse=True))
    + r")[ \t]*:",
    re.IGNORECASE,
)


def canonical_section(name: str) -> str:
    """Map a header or field name (``"IMPRESSION"``, ``"Clinical history"``) to its section."""
    key = " ".join(name.lower().replace("_", " ").split())
    return SECTION_ALIASES.get(key, key)


@dataclass(frozen=True)
class Section:
    """A span of report text under one header.

    Attributes:
        name: canonical section name (``findings``, ``impression``, ``indication``, ...).
        text: the section's text without its header.
        offset: where ``text`` starts in the text it was split from.
    """

    name: str
    text: str
    offset: int = 0


def split_sections(text: str, default: str = "findings") -> list[Section]:
    """Split ``text`` at recognised headers such as ``FINDINGS:`` and ``IMPRESSION:``.

    Text before the first header (or all of it, when there is no header) belongs to
    ``default``.

    Example:
        >>> [s.name for s in split_sections("INDICATION: cough. FINDINGS: No effusion.")]
        ['indication', 'findings']
    """
    if ":" not in text:  # every header ends with a colon
        return [Section(default, text, 0)] if text.strip() else []
    sections: list[Section] = []
    pos = 0
    name = default
    for m in _HEADER.finditer(text):
        if text[pos:m.start()].strip():
            sections.append(Section(name, text[pos:m.start()], pos))
        name = canonical_section(m.group("name"))
        pos = m.end()
    if text[pos:].strip():
        sections.append(Section(name, text[pos:], pos))
    return sections


# A sentence ends at ., ! or ? followed by white space, at a period glued to the next
# word ("apex.There"), at a blank line, at a semicolon, or before a list number ("2.").
_SENTENCE_END = re.compile(
    r"[.!?]+(?:\s+|$)"
    r"|(?<=[A-Za-z]{2})\.(?=[A-Za-z]{2})"
    r"|\n[ \t]*\n\s*"
    r"|;\s*"
    r"|(?<=\s)\d{1,2}[.)]\s+"
)


def split_sentences(text: str) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` offsets of the sentences in ``text``, stripped of space.

    Decimals ("1.5 cm") never split. The split does not depend on letter case, so
    labels never depend on it either.
    """
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.start()
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            s = start + piece.index(stripped[0])
            yield s, s + len(stripped)
        start = m.end()
    piece = text[start:]
    stripped = piece.strip()
    if stripped:
        s = start + piece.index(stripped[0])
        yield s, s + len(stripped)
