"""Triage service benchmark: scoring latency and sustained DICOM ingest, with real peers.

    .venv/bin/python bench/service_bench.py                 # 200 studies, 500 instances

1. Latency: studies are sent one at a time with dcmtk's ``storescu`` at a steady pace
   (``--interval``); for each, the time from the C-STORE response (storescu returning) to
   the study's ``scored_at`` in the worklist. The worker runs the shipped model with
   Grad-CAM, draft, SR, FHIR and HL7 for every study, as in production.
2. Ingest: ``--ingest`` instances in one ``storescu`` association to the radiolens
   receiver, then the same files to Orthanc (Debian's package, started here on free
   ports), on the same machine; instances per second and the loss (sent minus stored).
   dcmtk (storescu and Orthanc's DICOM server) runs with TCP_NODELAY=1: with Nagle's
   algorithm on, each instance waits about 40 ms for a delayed ACK and both receivers
   top out near 20 instances/s, measuring TCP rather than themselves.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

STORESCU = "/usr/bin/storescu"


def make_studies(out: Path, n: int, size: int = 512) -> list[tuple[Path, str]]:
    from radiolens.imaging import to_secondary_capture, write_dicom_atomic

    rng = np.random.default_rng(0)
    made = []
    for i in range(n):
        _yy, xx = np.mgrid[0:size, 0:size]
        base = 0.4 + 0.3 * np.sin(xx / size * np.pi) + 0.1 * rng.random((size, size))
        pixels = (np.clip(base, 0, 1) * 255).astype(np.uint8)
        ds = to_secondary_capture(pixels, patient_id=f"BENCH{i:04d}", modality="DX")
        path = out / f"s{i:04d}.dcm"
        write_dicom_atomic(ds, path)
        made.append((path, str(ds.StudyInstanceUID)))
    return made


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--interval", type=float, default=1.0,
                    help="seconds between studies (default 1.0)")
    ap.add_argument("--ingest", type=int, default=500)
    ap.add_argument("--model", default="builtin:pneumonia-kermany")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    if not Path(STORESCU).exists():
        print("dcmtk's storescu is missing: apt-get install dcmtk", file=sys.stderr)
        return 2
    from radiolens.cli.main import setup_logging

    setup_logging(0, True)
    results: dict[str, object] = {"cpu_count": os.cpu_count(),
                                  "date": dt.date.today().isoformat()}
    with tempfile.TemporaryDirectory(prefix="radiolens-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_latency:
            results["latency"] = run_latency(args.studies, args.interval, args.model, work)
            print(json.dumps(results["latency"], indent=2), flush=True)
        if not args.skip_ingest:
            results["ingest"] = run_ingest(args.ingest, work)
            print(json.dumps(results["ingest"], indent=2), flush=True)
    (HERE / "results").mkdir(exist_ok=True)
    out = HERE / "results" / "service.json"
    if out.exists():  # keep the part of an earlier run that this one skipped
        earlier = json.loads(out.read_text())
        results = {**{k: v for k, v in earlier.items() if k not in results}, **results}
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_latency(n: int, interval: float, model: str, work: Path) -> dict[str, object]:
    from radiolens.runtime import TriageService, load_settings
    from radiolens.worklist import get_study

    studies = make_studies(work / "latency", n)
    settings = load_settings({"data_dir": work / "svc-latency", "dicom_port": _free_port(),
                              "http_port": _free_port(), "model": model,
                              "api_token": "bench"})
    service = TriageService(settings, quiet=True)
    service.start()
    sent_at: dict[str, dt.datetime] = {}
    try:
        # warm-up study (model load in the worker process), not counted
        warm = make_studies(work / "warm", 1)
        _storescu(service.receiver.port, [warm[0][0]])
        service.wait_until_scored([warm[0][1]], timeout=300)
        for path, uid in studies:
            t0 = time.monotonic()
            _storescu(service.receiver.port, [path])
            sent_at[uid] = dt.datetime.now(dt.UTC)
            rest = interval - (time.monotonic() - t0)
            if rest > 0:
                time.sleep(rest)
        status = service.wait_until_scored([u for _, u in studies], timeout=600)
        latencies = []
        for uid, when in sent_at.items():
            study = get_study(service.engine, uid)
            if study is not None and study.scored_at is not None:
                latencies.append((study.scored_at - when).total_seconds())
    finally:
        service.stop()
    return {
        "studies": n, "interval_s": interval, "model": model,
        "scored": sum(1 for s in status.values() if s == "scored"),
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
        "max_s": round(max(latencies), 3), "mean_s": round(statistics.mean(latencies), 3),
    }


def _storescu(port: int, files: list[Path], aet: str = "RADIOLENS") -> None:
    # TCP_NODELAY=1 makes dcmtk disable Nagle's algorithm; without it every instance waits
    # for a delayed ACK (about 40 ms) and both receivers measure the sender, not themselves.
    env = dict(os.environ, TCP_NODELAY="1")
    subprocess.run([STORESCU, "-aec", aet, "127.0.0.1", str(port), *map(str, files)],
                   check=True, capture_output=True, timeout=600, env=env)


def run_ingest(n: int, work: Path) -> dict[str, object]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from radiolens.receiver import DicomReceiver
    from radiolens.worklist import Instance, open_worklist

    files = [p for p, _ in make_studies(work / "ingest", n, size=256)]
    data_dir = work / "svc-ingest"
    engine = open_worklist(data_dir / "worklist.db")
    port = _free_port()
    receiver = DicomReceiver(data_dir, engine, host="127.0.0.1", port=port)
    receiver.start()
    try:
        t0 = time.perf_counter()
        _storescu(port, files)
        radiolens_s = time.perf_counter() - t0
    finally:
        receiver.stop()
    with Session(engine) as session:
        stored = int(session.scalar(select(func.count()).select_from(Instance)) or 0)

    sys.path.insert(0, str(HERE.parent / "tests"))
    from dicomnet.synthetic import run_orthanc  # type: ignore[import-not-found]

    (work / "orthanc").mkdir()
    os.environ["TCP_NODELAY"] = "1"  # Orthanc's DICOM server is dcmtk too: Nagle off there
    with run_orthanc(work / "orthanc", {}) as orthanc:
        t0 = time.perf_counter()
        _storescu(orthanc.dicom_port, files, aet="ORTHANC")
        orthanc_s = time.perf_counter() - t0
        orthanc_stored = int(orthanc.call("GET", "/statistics")["CountInstances"])
    r_rate, o_rate = n / radiolens_s, n / orthanc_s
    return {"instances": n, "radiolens_per_s": round(r_rate, 1),
            "radiolens_lost": n - stored, "orthanc_per_s": round(o_rate, 1),
            "orthanc_lost": n - orthanc_stored,
            "radiolens_over_orthanc": round(r_rate / o_rate, 2)}


if __name__ == "__main__":
    sys.exit(main())
