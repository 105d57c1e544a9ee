"""``radiolens examples``: write the shipped example files, to try every command on.

The folder holds what the README's tour uses, so a new user needs nothing else:

* ``reports.jsonl``: eight example radiology reports (written for radiolens, no patient
  data) and ``reports_gold.csv``, labels for them annotated by hand;
* ``images/case01.png`` ... ``case08.png``: the eight CC BY 4.0 Kermany demo radiographs
  (``ATTRIBUTION.md``), with ``images.csv``, a label table (``pneumonia``, ``normal``,
  ``patient_id``, ``split``);
* ``dicom/``: the same radiographs wrapped in DICOM with synthetic patients, as the demo
  sends them;
* ``synthetic/``: 96 synthetic chest-like pictures with a ``pneumonia`` label a tiny CNN
  learns in an epoch or two and a lung mask each (``labels.csv`` with ``mask`` and a
  patient-level ``split``), to try ``train``, ``train-seg`` and ``evaluate`` in seconds.
  Never for anything clinical.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Size of the synthetic training set (a quarter of its patients form the validation split).
SYNTHETIC_IMAGES = 96
#: Two images (one normal, one pneumonia) form the validation split of ``images.csv``.
_VALIDATION = {"case03.png", "case08.png"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "examples", help="write example reports and radiographs to try the commands on",
        description="Write example reports (with hand-made gold labels), the eight demo "
                    "radiographs as PNG with a label table, the same as DICOM, and a small "
                    "synthetic training set, into DIR.")
    p.add_argument("directory", metavar="DIR", help="folder to create (must be empty or new)")
    p.set_defaults(run=run)


def _write_reports(out: Path) -> None:
    data = resources.files("radiolens.reports") / "data"
    (out / "reports.jsonl").write_text((data / "example_reports.jsonl").read_text("utf-8"),
                                       "utf-8")
    (out / "reports_gold.csv").write_text((data / "example_gold.csv").read_text("utf-8"),
                                          "utf-8")


def _write_images(out: Path) -> int:
    from radiolens.cli.demo_triage import example_cases

    images = out / "images"
    images.mkdir()
    rows = []
    for i, case in enumerate(example_cases(), 1):
        shutil.copyfile(case["path"], images / case["file"])
        pneumonia = int(case["label"] == "PNEUMONIA")
        rows.append({"image": f"images/{case['file']}", "pneumonia": pneumonia,
                     "normal": 1 - pneumonia, "patient_id": f"EXAMPLE-{i:02d}",
                     "split": "val" if case["file"] in _VALIDATION else "train"})
    with open(out / "images.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    attribution = resources.files("radiolens") / "demo_data" / "ATTRIBUTION.md"
    (images / "ATTRIBUTION.md").write_text(attribution.read_text("utf-8"), "utf-8")
    return len(rows)


def _write_dicom(out: Path) -> int:
    from radiolens.cli.demo_triage import make_example_studies

    folder = out / "dicom"
    folder.mkdir()
    made = make_example_studies(folder)
    summary = [{"file": p.name, "patient_id": c["patient_id"], "label": c["label"]}
               for p, c in made]
    (folder / "studies.json").write_text(json.dumps(summary, indent=1) + "\n", "utf-8")
    return len(made)


def _write_synthetic(out: Path) -> int:
    from radiolens.data import make_synthetic_dataset

    make_synthetic_dataset(out / "synthetic", n=SYNTHETIC_IMAGES, masks=True)
    return SYNTHETIC_IMAGES


def run(args: argparse.Namespace) -> int:
    from radiolens.errors import ConfigError

    out = Path(args.directory)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty folder; name a new one")
    out.mkdir(parents=True, exist_ok=True)
    _write_reports(out)
    n_images = _write_images(out)
    n_dicom = _write_dicom(out)
    n_synthetic = _write_synthetic(out)
    print(f"wrote 8 example reports (+ gold labels), {n_images} radiographs (images.csv), "
          f"{n_dicom} DICOM studies and {n_synthetic} synthetic training images "
          f"(synthetic/labels.csv) to {out}/")
    return 0
