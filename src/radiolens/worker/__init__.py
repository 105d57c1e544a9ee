"""The scoring worker: claims jobs from the worklist, runs the model and Grad-CAM,
computes priorities, writes draft reports (text, SR, FHIR, HL7) and sends them back."""

from __future__ import annotations

from radiolens.worker.policy import TriagePolicy, load_policy
from radiolens.worker.runner import Worker, parse_host_port, run_worker_process

__all__ = ["TriagePolicy", "Worker", "load_policy", "parse_host_port", "run_worker_process"]
