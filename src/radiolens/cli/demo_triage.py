"""The triage demo: a PACS sends example studies, radiolens scores and ranks them."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else a free port from the OS."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
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
    from radiolens import DISCLAIMER
    from radiolens.dicomnet import send_files
    from radiolens.runtime import TriageService, load_settings
    from radiolens.worklist import list_results, list_studies

    if not args.verbose:  # the table is the output; -v shows the service's log
        logging.getLogger("radiolens").setLevel(logging.WARNING)
    data_dir = Path(args.data_dir) if args.data_dir else Path(
        tempfile.mkdtemp(prefix="radiolens-demo-"))
    settings = load_settings({
        "data_dir": data_dir, "model": args.model,
        "dicom_port": args.dicom_port or _free_port(11112),
        "http_port": args.http_port or _free_port(8000), "host": "127.0.0.1"})
    service = TriageService(settings, verbose=args.verbose, quiet=not args.verbose)
    print(f"radiolens demo: starting the triage service in {data_dir}")
    service.start()
    try:
        outgoing = data_dir / "demo-outgoing"
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
                         probs or "-", case.get("label", "?"), impression[:60]])
        print()
        print(_table(rows, ["#", "priority", "status", "patient", "flags", "probability",
                            "dataset label", "AI draft impression"]))
        failed = [u for u, s in status.items() if s != "scored"]
        print()
        print(f"worklist: {service.url}/#token={service.token}")
        print(f"API docs: {service.url}/docs   token: {service.token}")
        print(f"try: curl -H 'Authorization: Bearer {service.token}' {service.url}/api/studies")
        print(f"DICOM: send more studies with `radiolens send FILES --to {target}`")
        print(f"\n{DISCLAIMER}")
        if failed:
            log.error("%d studies were not scored: %s", len(failed), ", ".join(
                f"{u} ({status[u]})" for u in failed))
        if args.exit_when_done:
            return 1 if failed or report.failed else 0
        print("\nserving; press Ctrl-C to stop")
        service.serve_forever()
        return 0
    finally:
        service.stop()


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
