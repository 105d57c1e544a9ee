"""The core install gives `import radiolens` and `radiolens label` without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "numpy", "monai", "pydicom", "sklearn", "PIL", "fastapi", "sqlalchemy")

BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {heavy!r}:
            raise ImportError(f"{{name}} is blocked: the core install has no {{name}}")
sys.meta_path.insert(0, Block())
import radiolens
from radiolens import label_report
assert label_report("No pneumothorax.").labels["Pneumothorax"] == 0
from radiolens.cli.main import main
code = main(["label", {src!r}, "-o", {out!r}])
loaded = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
print(code, loaded)
"""


def test_label_works_with_heavy_packages_blocked(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    src.write_text(json.dumps({"id": "1", "findings": "Small effusion."}) + "\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    code = BLOCKER.format(heavy=HEAVY, src=str(src), out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0 []"
    assert out.read_text(encoding="utf-8").splitlines()[1].split(",")[5] == "1"


@pytest.mark.slow
def test_fresh_core_install_in_a_new_venv(tmp_path: Path) -> None:
    """pip install radiolens (no extras) into an empty venv, then use the CLI."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(ROOT)],
                          capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        pytest.fail(f"pip install failed:\n{proc.stdout}\n{proc.stderr}")
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=json"], capture_output=True,
                            text=True, check=True, env=env).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert "torch" not in names and "numpy" not in names
    src = tmp_path / "r.csv"
    src.write_text("id,findings\n1,No pneumothorax. Small left effusion.\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    proc = subprocess.run([str(env_dir / "bin" / "radiolens"), "label", str(src), "-o", str(out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8").splitlines()[1] == "1,,,,,1,,,,,,,,,0,0"
    demo = subprocess.run([str(env_dir / "bin" / "radiolens"), "--help"], capture_output=True,
                          text=True, env=env)
    assert demo.returncode == 0 and "label" in demo.stdout
