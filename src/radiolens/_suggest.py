"""'Did you mean' hints for unknown names in options and files."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when none is close."""
    options = list(choices)
    lowered = {c.lower(): c for c in options}
    if name.lower() in lowered:
        return f" (did you mean {lowered[name.lower()]!r}?)"
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def choices_hint(choices: Iterable[str]) -> str:
    """Return ``"choose from: a, b, c"``."""
    return "choose from: " + ", ".join(sorted(choices))
