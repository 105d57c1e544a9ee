"""Tiny label tables and image folders, generated in ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, value: int = 128) -> Path:
    """A 4x4 grey PNG (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, np.uint8)).save(path)
    return path


def write_csv(path: Path, text: str) -> Path:
    """Write ``text`` (leading spaces of each line stripped) as a CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(line.strip() for line in text.strip().splitlines()) + "\n",
                    encoding="utf-8")
    return path


@pytest.fixture
def table(tmp_path: Path) -> Callable[[str], Path]:
    """Factory: write a label table whose ``image`` files all exist; returns the CSV path."""

    def make(text: str) -> Path:
        csv_path = write_csv(tmp_path / "labels.csv", text)
        header = text.strip().splitlines()[0].strip().split(",")
        if "image" in header:
            col = header.index("image")
            for line in text.strip().splitlines()[1:]:
                cells = line.strip().split(",")
                if len(cells) > col and cells[col]:
                    write_png(tmp_path / cells[col])
        return csv_path

    return make
