"""Where the worker's time goes on a batch of studies: read, segment, score, each output.

    .venv/bin/python bench/worker_profile.py                  # 8 studies of 512 px, one batch
    .venv/bin/python bench/worker_profile.py --studies 20 --lung-model none

The studies (synthetic one-instance DX studies, as ``burst_bench.py`` sends) are ingested
straight into a fresh data folder with ``ingest_dataset`` (no network), a
:class:`~radiolens.worker.Worker` with the service's defaults is loaded, one study is
scored to warm it, then ONE ``run_batch`` scores the rest under cProfile. Prints the
wall time per study and, for each stage of the worker, its cumulative time in ms per
study and its share of the batch (stages nest: "outputs" holds the SR, SEG, ...).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from crash_bench import make_instances  # noqa: E402

#: (stage, module path fragment, function name) in the order a study goes through them.
STAGES = (
    ("claim and record (worklist)", "worker/runner.py", "_finish_job"),
    ("read the DICOM files", "worker/scoring.py", "_read_study"),
    ("lung segmentation (batch)", "worker/scoring.py", "_segment_batch"),
    ("classifier (batch)", "worker/scoring.py", "_predict_batch"),
    ("finish: all outputs of a study", "worker/scoring.py", "_finish"),
    ("  heatmaps (PNG + Secondary Capture)", "worker/scoring.py", "_heatmaps"),
    ("  lung mask PNG", "worker/scoring.py", "_lung_mask"),
    ("  lung DICOM Segmentation", "worker/scoring.py", "_lung_seg"),
    ("  draft report", "drafts/", "draft_report"),
    ("  DICOM SR", "worker/scoring.py", "_sr"),
    ("  FHIR", "worker/scoring.py", "_fhir"),
    ("  HL7", "worker/scoring.py", "_hl7"),
    ("  durable writes (write_atomic)", "radiolens/_fs.py", "write_atomic"),
    ("    of which fsync", "~", "<built-in method posix.fsync>"),
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=8)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--model", default="builtin:pneumonia-kermany")
    ap.add_argument("--lung-model", default="builtin:lungs")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--callees", nargs="*", default=[], metavar="FUNC",
                    help="also print what these functions call (pstats regexps)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "worker_profile.json")
    args = ap.parse_args()

    import pydicom

    from radiolens.logsafe import setup_logging
    from radiolens.receiver import ingest_dataset
    from radiolens.worker import Worker
    from radiolens.worklist import default_db_path, open_worklist

    setup_logging(0, True)
    with tempfile.TemporaryDirectory(prefix="radiolens-profile-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        files = make_instances(Path(tmp) / "in", args.studies + 1, size=args.size)
        engine = open_worklist(default_db_path(data))
        for f in files:
            ingest_dataset(data, engine, pydicom.dcmread(f), f.read_bytes())
        engine.dispose()
        lung = None if args.lung_model == "none" else args.lung_model
        worker = Worker(data, model=args.model, lung_model=lung, backend=args.backend,
                        batch_studies=args.studies).load()
        assert worker.run_batch(limit=1) == 1  # warm-up study
        profile = cProfile.Profile()
        t0 = time.perf_counter()
        profile.enable()
        done = worker.run_batch(limit=args.studies)
        profile.disable()
        wall = time.perf_counter() - t0
    stats = pstats.Stats(profile)
    rows = []
    for stage, where, name in STAGES:
        total = sum(v[3] for (file, _line, func), v in stats.stats.items()  # type: ignore[attr-defined]
                    if func == name and where in file)
        rows.append({"stage": stage, "ms_per_study": 1000 * total / max(done, 1),
                     "share": total / wall})
    print(f"{done} studies of {args.size} px in one batch: {wall:.2f} s, "
          f"{1000 * wall / max(done, 1):.0f} ms per study (backend {worker.predictor_.backend_}"
          f", lungs {args.lung_model}, load average {os.getloadavg()[0]:.2f})")
    for r in rows:
        print(f"  {r['stage']:<40} {r['ms_per_study']:7.1f} ms/study  {100 * r['share']:5.1f}%")
    if args.callees:
        for name in args.callees:
            stats.sort_stats("cumulative").print_callees(name, 12)  # type: ignore[arg-type]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"studies": done, "size": args.size, "wall_s": wall,
                                    "backend": worker.predictor_.backend_,
                                    "lung_model": args.lung_model, "stages": rows},
                                   indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
