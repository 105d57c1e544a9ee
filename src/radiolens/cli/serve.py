"""``radiolens serve``: DICOM receiver + scoring worker + HTTP API, in one command."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="run the triage service: receive DICOM, score, serve the worklist",
        description="Receive studies from a PACS (DICOM C-STORE), score them with a model in "
                    "a worker process, keep a prioritised worklist, and serve the API "
                    "(/docs) and web UI. Settings also come from RADIOLENS_* environment "
                    "variables (e.g. RADIOLENS_API_TOKEN). The AI assists radiologists; it "
                    "never replaces them.")
    p.add_argument("--data-dir", metavar="DIR", help="data folder (default ./radiolens-data)")
    p.add_argument("--db", metavar="URL", help="database URL (default: SQLite in the data "
                   "folder; postgresql://... for PostgreSQL)")
    p.add_argument("--ae-title", metavar="AE", help="our AE title (default RADIOLENS)")
    p.add_argument("--dicom-port", type=int, metavar="N", help="default 11112")
    p.add_argument("--http-port", type=int, metavar="N", help="default 8000")
    p.add_argument("--receivers", type=int, metavar="N", help="DICOM receiver processes "
                   "sharing --dicom-port (default 1; about one per core when a PACS sends "
                   "over many associations at once)")
    p.add_argument("--host", metavar="ADDR", help="listen address (default 127.0.0.1; "
                   "0.0.0.0 for every interface)")
    p.add_argument("--model", metavar="CKPT", help="run directory or builtin:NAME (default "
                   "builtin:pneumonia-kermany)")
    p.add_argument("--lung-model", metavar="RUN_DIR|none", help="lung segmentation model "
                   "for lung masks, the image check and heat-in-lungs (default builtin:lungs; "
                   "skipped with a warning when not installed; none turns it off)")
    p.add_argument("--batch-studies", type=int, metavar="N", help="most queued studies the "
                   "worker scores together in one batch (default 8; 1: one at a time)")
    p.add_argument("--output-lag", type=float, metavar="S", dest="output_lag_s",
                   help="longest the SR, Segmentation, FHIR and HL7 of a scored study wait "
                        "while more studies are queued (default 5; 0: after each batch)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx", "openvino"],
                   help="how the worker scores (default auto: OpenVINO when installed, else "
                        "ONNX Runtime, else PyTorch; heatmaps then come from the same pass)")
    p.add_argument("--policy", metavar="YAML", help="thresholds/urgency overrides")
    p.add_argument("--forward-to", metavar="AE@HOST:PORT", help="send the SR back to a PACS")
    p.add_argument("--send-heatmaps", action="store_true", default=None,
                   help="also send heatmap Secondary Captures")
    p.add_argument("--hl7-to", metavar="HOST:PORT", help="send ORU^R01 over MLLP")
    p.add_argument("--memory-limit-mb", type=int, metavar="MB", help="address-space limit "
                   "of the worker process (default 8192; 0 for none)")
    p.add_argument("--tls-cert", metavar="PEM", help="certificate for HTTPS and DICOM TLS")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.add_argument("--accept-any-called-ae", action="store_false", dest="require_called_aet",
                   default=None, help="accept associations addressed to any AE title "
                                      "(default: only to --ae-title)")
    p.add_argument("--max-image-pixels", type=int, metavar="N",
                   help="largest Rows x Columns accepted (default 36000000)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from radiolens import DISCLAIMER
    from radiolens.runtime import TriageService, load_settings

    settings = load_settings({
        "data_dir": args.data_dir, "db": args.db, "ae_title": args.ae_title,
        "dicom_port": args.dicom_port, "http_port": args.http_port, "host": args.host,
        "receivers": args.receivers,
        "model": args.model, "lung_model": args.lung_model, "policy": args.policy,
        "batch_studies": args.batch_studies, "backend": args.backend,
        "output_lag_s": args.output_lag_s,
        "forward_to": args.forward_to,
        "hl7_to": args.hl7_to, "send_heatmaps": args.send_heatmaps,
        "memory_limit_mb": args.memory_limit_mb, "tls_cert": args.tls_cert,
        "tls_key": args.tls_key, "require_called_aet": args.require_called_aet,
        "max_image_pixels": args.max_image_pixels})
    service = TriageService(settings, verbose=args.verbose, quiet=args.quiet)
    service.install_signal_handlers()  # SIGTERM / Ctrl-C: stop every part, join the worker
    service.start()
    try:
        print(f"radiolens triage service: DICOM {settings.ae_title}@{settings.host}:"
              f"{service.receiver.port}; web UI and API {service.url}/ (docs at /docs)")
        if service.token_created:
            print(f"new API token (saved in {settings.data_dir / 'api_token'}): "
                  f"{service.token}")
        print(DISCLAIMER)
        service.serve_forever()
    finally:
        service.stop()
    return 0
