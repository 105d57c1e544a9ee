"""Example reports shipped with radiolens (written for it; no patient data)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["example_reports"]


def example_reports() -> list[dict[str, Any]]:
    """The example reports used by ``radiolens demo`` and the tutorial."""
    text = resources.files("radiolens.reports").joinpath("data", "example_reports.jsonl").read_text(
        "utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
