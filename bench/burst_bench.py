"""Burst benchmark: send-to-scored latency of studies sent back to back, by batch size.

    .venv/bin/python bench/burst_bench.py                     # 20 studies, batch 1 vs default
    .venv/bin/python bench/burst_bench.py --studies 6 --size 256 --model builtin:abnormal-adult

For each setting a real ``radiolens serve`` runs as its own process group on a fresh data
folder (the worker's ``batch_studies`` comes from ``RADIOLENS_BATCH_STUDIES``, inherited by
the spawned worker; the default setting leaves it unset). One warm-up study is sent and
scored first (model load, not counted). Then ``--studies`` one-instance studies are sent
back to back, one dcmtk ``storescu`` association each, as a PACS sends a burst. Latency
of a study: from its C-STORE response (``storescu`` returning) to its ``scored_at`` as the
API (``GET /api/studies``) reports it. The worker runs the model with Grad-CAM, draft,
SR, FHIR and HL7 (and lung masks when a lung model is installed), as in production.

The first setting is the worker as it was (one study at a time, PyTorch, a Grad-CAM
backward pass per flagged finding, every output built before the next study:
``--batch-studies 1 --before-backend torch``, ``output_lag_s`` 0); the second batches
queued studies with ``--backend auto`` (OpenVINO, int8 where the model ships one, heatmaps
from the scoring pass) but still builds every output of a batch before the next
(``output_lag_s`` 0); the third is the service's defaults (triage first: the standard
outputs, and the lungs for a classifier that needs no mask, wait while studies are
queued, at most ``output_lag_s`` = 5 s).

Prints p50 / p95 / max per setting side by side, and the ratio of the p95s; writes
``bench/results/burst.json`` (``--out``). On a machine busy with other work the figures are slower
and noisier; run the settings back to back, as here, to compare them.
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
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from crash_bench import TOKEN, Service, make_instances  # noqa: E402

STORESCU = "/usr/bin/storescu"
BATCH_ENV = "RADIOLENS_BATCH_STUDIES"
BACKEND_ENV = "RADIOLENS_BACKEND"  # the service's settings read it (serve --backend)
LAG_ENV = "RADIOLENS_OUTPUT_LAG_S"  # serve --output-lag
DONE = ("scored", "failed", "needs-check")


def _uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def _send(port: int, path: Path) -> None:
    # TCP_NODELAY=1: dcmtk turns Nagle's algorithm off (else ~40 ms per instance, see
    # service_bench.py)
    env = dict(os.environ, TCP_NODELAY="1")
    subprocess.run([STORESCU, "-aec", "RADIOLENS", "127.0.0.1", str(port), str(path)],
                   check=True, capture_output=True, timeout=120, env=env)


def _studies(client: Any, port: int) -> dict[str, dict[str, Any]]:
    answer = client.get(f"http://127.0.0.1:{port}/api/studies", params={"limit": 1000})
    answer.raise_for_status()
    return {s["study_instance_uid"]: s for s in answer.json()}


def _wait(client: Any, port: int, uids: list[str], timeout: float, outputs: bool = False
          ) -> dict[str, dict[str, Any]]:
    """Poll until every study is done (``outputs``: and its outputs are built)."""
    deadline = time.monotonic() + timeout

    def done(row: dict[str, Any]) -> bool:
        return row.get("status") in DONE and not (outputs and row.get("outputs_pending"))

    while True:
        rows = _studies(client, port)
        if all(done(rows.get(u, {})) for u in uids):
            return rows
        if time.monotonic() > deadline:
            left = [u for u in uids if not done(rows.get(u, {}))]
            what = "without their outputs" if outputs else "not scored"
            raise TimeoutError(f"{len(left)} studies {what} after {timeout:.0f} s")
        time.sleep(0.05)


def _parse_time(text: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def run_setting(batch: int | None, files: list[Path], warm: Path, model: str, work: Path,
                timeout: float, backend: str | None = None,
                output_lag: float | None = None) -> dict[str, Any]:
    """One service with ``batch_studies`` = ``batch``, the worker's ``backend`` and its
    ``output_lag_s`` (None: the service's defaults)."""
    import httpx

    name = ("default" if batch is None and backend is None and output_lag is None else
            " ".join(f"{k}={v}" for k, v in (("batch_studies", batch), ("backend", backend),
                                            ("output_lag_s", output_lag)) if v is not None))
    data_dir = work / name.replace("=", "-").replace(" ", "_") / "data"
    data_dir.mkdir(parents=True)
    saved = os.environ.pop(BATCH_ENV, None)
    saved_backend = os.environ.pop(BACKEND_ENV, None)
    if batch is not None:
        os.environ[BATCH_ENV] = str(batch)
    if backend is not None:
        os.environ[BACKEND_ENV] = backend
    saved_lag = os.environ.pop(LAG_ENV, None)
    if output_lag is not None:
        os.environ[LAG_ENV] = str(output_lag)
    svc = Service(data_dir, model)
    try:
        svc.start()
        uids = [_uid(p) for p in files]
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            _send(svc.dicom_port, warm)
            _wait(client, svc.http_port, [_uid(warm)], timeout=600)
            sent_at: dict[str, dt.datetime] = {}
            t0 = time.monotonic()
            for path, uid in zip(files, uids, strict=True):
                _send(svc.dicom_port, path)
                sent_at[uid] = dt.datetime.now(dt.UTC)
            send_s = time.monotonic() - t0
            rows = _wait(client, svc.http_port, uids, timeout)
            wall_s = time.monotonic() - t0
            # triage first: the SR, SEG, heatmap images, FHIR and HL7 may follow; none may
            # be dropped, so the run also waits for every study's outputs
            _wait(client, svc.http_port, uids, timeout, outputs=True)
            outputs_s = time.monotonic() - t0
    finally:
        svc.stop()
        os.environ.pop(BATCH_ENV, None)
        os.environ.pop(BACKEND_ENV, None)
        if saved is not None:
            os.environ[BATCH_ENV] = saved
        if saved_backend is not None:
            os.environ[BACKEND_ENV] = saved_backend
        os.environ.pop(LAG_ENV, None)
        if saved_lag is not None:
            os.environ[LAG_ENV] = saved_lag
    latencies = [(_parse_time(rows[u]["scored_at"]) - sent_at[u]).total_seconds()
                 for u in uids if rows[u].get("scored_at")]
    statuses = [rows[u]["status"] for u in uids]
    return {"setting": name, "studies": len(files),
            "scored": statuses.count("scored"),
            "not_scored": len(files) - statuses.count("scored"),
            "send_s": round(send_s, 2), "all_scored_s": round(wall_s, 2),
            "all_outputs_s": round(outputs_s, 2),
            "p50_s": round(float(np.percentile(latencies, 50)), 3) if latencies else None,
            "p95_s": round(float(np.percentile(latencies, 95)), 3) if latencies else None,
            "max_s": round(max(latencies), 3) if latencies else None,
            "mean_s": round(statistics.mean(latencies), 3) if latencies else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--studies", type=int, default=20, help="studies in the burst (20)")
    ap.add_argument("--batch-studies", type=int, default=1, metavar="N",
                    help="the setting compared with the service's default (1)")
    ap.add_argument("--size", type=int, default=512, help="image side in pixels (512)")
    ap.add_argument("--model", default="builtin:pneumonia-kermany")
    ap.add_argument("--before-backend", default="torch",
                    help="the worker's backend in the first setting (torch: as before; the "
                         "default setting uses the service's, auto)")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds to wait for the burst to be scored (600)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "burst.json",
                    help="where the JSON goes (bench/results/burst.json)")
    args = ap.parse_args()
    if not Path(STORESCU).exists():
        print("dcmtk's storescu is missing: apt-get install dcmtk", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"cpu_count": os.cpu_count(), "date": dt.date.today().isoformat(),
                               "model": args.model, "size": args.size,
                               "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="radiolens-burst-") as tmp:
        work = Path(tmp)
        files = make_instances(work / "burst", args.studies + 1, size=args.size)
        warm, files = files[0], files[1:]
        runs = []
        settings = [(args.batch_studies, args.before_backend, 0.0), (None, None, 0.0),
                    (None, None, None)]
        for batch, backend, lag in settings:
            runs.append(run_setting(batch, files, warm, args.model, work, args.timeout,
                                    backend, lag))
            print(json.dumps(runs[-1]), flush=True)
    results["runs"] = runs
    results["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    one, default = runs[0], runs[-1]
    if one["p95_s"] and default["p95_s"]:
        results["p95_ratio"] = round(one["p95_s"] / default["p95_s"], 2)
    print(f"{'setting':<50} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'all scored s':>13} "
          f"{'all outputs s':>14}")
    for r in runs:
        print(f"{r['setting']:<50} {r['p50_s']!s:>7} {r['p95_s']!s:>7} {r['max_s']!s:>7} "
              f"{r['all_scored_s']!s:>13} {r['all_outputs_s']!s:>14}")
    if "p95_ratio" in results:
        print(f"p95 {one['setting']} / default: {results['p95_ratio']}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
