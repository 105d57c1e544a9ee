"""The triage demo: a PACS sends example studies, radiolens scores and ranks them.

A temporary data folder is removed when the demo ends (also on Ctrl-C); a folder given
with ``--data-dir`` is kept. A default port that is taken is replaced by a free one, and
the demo says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import socket
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _free_port(preferred: int, what: str = "TCP") -> int:
    """``preferred`` when nothing listens there, else a free port from the OS (said so)."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen = int(s.getsockname()[1])
        if chosen != preferred:
            print(f"radiolens demo: port {preferred} is in use; using port {chosen} for "
                  f"{what} instead")
        return chosen
    raise OSError("no free TCP port")


def example_cases() -> list[dict[str, Any]]:
    """The shipped example images with their data-set labels (see ATTRIBUTION.md)."""
    folder = resources.files("radiolens") / "demo_data"
    cases: list[dict[str, Any]] = json.loads((folder / "cases.json").read_text())
    for case in cases:
        case["path"] = Path(str(folder / case["file"]))
    return cases


def make_example_studies(out_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Wrap each example PNG in a DICOM Secondary Capture with synthetic patient data."""
    from radiolens.imaging import load_grey_array, to_secondary_capture, write_dicom_atomic

    made = []
    for i, case in enumerate(example_cases(), 1):
        pixels, _ = load_grey_array(case["path"])
        ds = to_secondary_capture(
            pixels, patient_id=f"DEMO-{i:03d}", patient_name=f"DEMO^PATIENT{i:02d}",
            patient_sex="MF"[i % 2], patient_age=f"{3 + i % 5:03d}Y",
            accession_number=f"DEMOACC{i:04d}", study_description="XR CHEST 1V (demo)",
            modality="DX", series_description="chest PA (demo)", view_position="PA")
        ds.PatientOrientation = ["L", "F"]  # frontal PA chest, as the images are
        path = out_dir / f"demo_{i:02d}.dcm"
        write_dicom_atomic(ds, path)
        case = dict(case, study_instance_uid=str(ds.StudyInstanceUID),
                    patient_id=str(ds.PatientID))
        made.append((path, case))
    return made


def _table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def run_triage_demo(args: argparse.Namespace) -> int:
    """Run the demo; the temporary data folder never outlives it."""
    from radiolens.runtime import TriageService, load_settings

    if not args.verbose:  # the table is the output; -v shows the service's log
        logging.getLogger("radiolens").setLevel(logging.WARNING)
    dicom_port = args.dicom_port or _free_port(11112, "DICOM")
    http_port = args.http_port or _free_port(8000, "HTTP")
    temporary = not args.data_dir
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    data_dir = Path(args.data_dir) if args.data_dir else Path(
        tempfile.mkdtemp(prefix="radiolens-demo-"))
    try:
        settings = load_settings({"data_dir": data_dir, "model": args.model,
                                  "dicom_port": dicom_port, "http_port": http_port,
                                  "host": "127.0.0.1"})
        service = TriageService(settings, verbose=args.verbose, quiet=not args.verbose)
        print(f"radiolens demo: starting the triage service in "
              f"{'a temporary folder, ' if temporary else ''}{data_dir}")
        service.start()
        return _demo(args, service, settings)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


def _demo(args: argparse.Namespace, service: Any, settings: Any) -> int:
    """Send the examples, print the worklist, then serve (or stop, with --exit-when-done)."""
    from radiolens import DISCLAIMER
    from radiolens.dicomnet import send_files
    from radiolens.worklist import list_results, list_studies

    try:
        outgoing = settings.data_dir / "demo-outgoing"
        studies = make_example_studies(outgoing)
        target = f"{settings.ae_title}@127.0.0.1:{service.receiver.port}"
        print(f"sending {len(studies)} example studies to {target} by DICOM C-STORE, as a "
              "PACS would ...")
        report = send_files([p for p, _ in studies], target, calling_ae="DEMO-PACS")
        if report.failed:
            for path, reason in report.failed:
                log.error("not sent: %s: %s", path, reason)
        cases = {c["study_instance_uid"]: c for _, c in studies}
        status = service.wait_until_scored(cases, timeout=args.timeout)
        rows = []
        for rank, study in enumerate(list_studies(service.engine), 1):
            case = cases.get(study.study_instance_uid, {})
            results = list_results(service.engine, study.study_instance_uid)
            impression = ""
            if results and results[0].draft_text:
                impression = _impression(results[0].draft_text)
            probs = ", ".join(f"{k} {v:.2f}" for k, v in (study.findings or {}).items())
            rows.append([str(rank), str(study.priority), study.status,
                         case.get("patient_id", "?"), ", ".join(study.flags or []) or "-",
                         probs or "-", case.get("label", "?"), _cut(impression, 60)])
        print()
        print(_table(rows, ["#", "priority", "status", "patient", "flags", "probability",
                            "dataset label", "AI draft impression"]))
        failed = [u for u, s in status.items() if s != "scored"]
        print()
        if not args.exit_when_done:  # no URLs of a service that is about to stop
            print(f"worklist: {service.url}/#token={service.token}")
            print(f"API docs: {service.url}/docs   token: {service.token}")
            print(f"try: curl -H 'Authorization: Bearer {service.token}' "
                  f"{service.url}/api/studies")
            print(f"DICOM: send more studies with `radiolens send FILES --to {target}`")
        print(f"\n{DISCLAIMER}")
        if failed:
            log.error("%d studies were not scored: %s", len(failed), ", ".join(
                f"{u} ({status[u]})" for u in failed))
        if args.exit_when_done:
            print("radiolens demo: done; the service has stopped")
            return 1 if failed or report.failed else 0
        print("\nserving; press Ctrl-C to stop")
        service.serve_forever()
        return 0
    finally:
        service.stop()


def _cut(text: str, n: int) -> str:
    """``text`` in at most ``n`` characters, with an ellipsis when it was cut."""
    return text if len(text) <= n else text[:n - 1].rstrip() + "…"


def _impression(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines()]
    for i, line in enumerate(lines):
        if line.upper().startswith("IMPRESSION"):
            rest = line.split(":", 1)[1].strip() if ":" in line else ""
            if rest:
                return rest
            for nxt in lines[i + 1:]:
                if nxt:
                    return nxt
    return next((ln for ln in lines[1:] if ln), "")
