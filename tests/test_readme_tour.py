"""The README's tour, run top to bottom as a new user would type it.

The block between ``<!-- tour: ... -->`` and ``<!-- end tour -->`` in README.md is run as
one bash script (``set -e``) in an empty folder, with this environment's ``radiolens`` on
the PATH. Any command that fails fails the test, so the README cannot drift from the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_script() -> str:
    """The shell commands of the README's tour block."""
    text = README.read_text("utf-8")
    m = re.search(r"<!-- tour:[^>]*-->\s*```bash\n(.*?)```\s*<!-- end tour -->", text, re.S)
    assert m, "README.md has no tour block (<!-- tour: ... --> ```bash ... ``` <!-- end tour -->)"
    return m.group(1)


def test_tour_block_has_commands() -> None:
    lines = [ln for ln in tour_script().splitlines() if ln.strip().startswith("radiolens ")]
    assert len(lines) >= 6
    assert any("demo" in ln for ln in lines)


@pytest.mark.slow
@pytest.mark.pacs
def test_readme_tour_runs(tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
               RADIOLENS_API_TOKEN="tour-token")
    script = "set -euo pipefail\n" + tour_script()
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (
        f"README tour failed (exit {proc.returncode})\n--- stdout\n{proc.stdout[-4000:]}"
        f"\n--- stderr\n{proc.stderr[-4000:]}")
    tour = tmp_path / "tour"
    assert (tour / "labels.csv").read_text().startswith("id,")
    assert (tour / "runs" / "tiny" / "model.json").is_file()
    assert (tour / "runs" / "tiny" / "config.yaml").is_file()
    assert (tour / "eval" / "tiny" / "metrics.json").is_file()
    assert (tour / "eval" / "kermany" / "report.html").is_file()
    scores = (tour / "scores.csv").read_text().splitlines()
    assert len(scores) == 9  # header + eight radiographs
    assert "Pneumonia" in proc.stdout or "pneumonia" in proc.stdout
