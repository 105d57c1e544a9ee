"""Fail early, with the pip hint, when the ``train`` extra is not installed."""

from __future__ import annotations

import importlib.util

from radiolens.errors import MissingDependencyError


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


for _package in ("torch", "monai", "safetensors", "pydantic"):
    if not _installed(_package):
        raise MissingDependencyError(_package, "train")
