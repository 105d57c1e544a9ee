"""Service settings: flags over ``RADIOLENS_*`` environment variables over defaults."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from radiolens.errors import ConfigError

__all__ = ["API_SHUTDOWN_GRACE_S", "ServiceSettings", "load_settings",
           "read_or_create_token"]

ENV_PREFIX = "RADIOLENS_"

#: Seconds the API waits for open requests when it stops. A reviewer's open page holds
#: a server-sent event stream that never ends by itself (the browser reconnects to the
#: next API); without a limit every stop waited for the supervisor's 10 s timeout.
API_SHUTDOWN_GRACE_S = 2


class ServiceSettings(BaseModel):
    """Everything ``radiolens serve`` needs; each field also reads ``RADIOLENS_<NAME>``."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(Path("radiolens-data"), description="DICOM files, results, DB")
    db: str | None = Field(None, description="database URL (default: SQLite in data_dir)")
    ae_title: str = Field("RADIOLENS", max_length=16)
    dicom_port: int = Field(11112, ge=1, le=65535)
    http_port: int = Field(8000, ge=1, le=65535)
    receivers: int = Field(1, ge=1, le=64, description="DICOM receiver processes sharing "
                           "dicom_port (SO_REUSEPORT); about one per core for many "
                           "concurrent associations")
    host: str = "127.0.0.1"
    model: str = "builtin:pneumonia-kermany"
    lung_model: str = Field("builtin:lungs", description="lung segmentation run directory "
                            "or builtin:NAME; none turns the lung masks and checks off")
    batch_studies: int = Field(8, ge=1, description="most queued studies the worker scores "
                                                     "together")
    output_lag_s: float = Field(5.0, ge=0, description="longest a scored study's SR, "
                                "Segmentation, FHIR and HL7 wait while more studies are "
                                "queued (triage first; 0: built after each batch)")
    backend: Literal["auto", "torch", "onnx", "openvino"] = Field(
        "auto", description="how the worker scores: auto (OpenVINO, else ONNX Runtime, else "
                            "PyTorch), or one of them")
    policy: str | None = Field(None, description="YAML overriding thresholds and urgency")
    forward_to: str | None = Field(None, description="AE@host:port for the SR")
    hl7_to: str | None = Field(None, description="host:port of an HL7 MLLP listener")
    send_heatmaps: bool = False
    api_token: str | None = None
    heatmaps: bool = True
    memory_limit_mb: int = Field(8192, ge=0, description="address-space limit of the "
                                 "worker process in MiB (RLIMIT_AS); 0 for none")
    api_memory_limit_mb: int = Field(4096, ge=0, description="address-space limit of the "
                                     "API process in MiB; 0 for none")
    receiver_memory_limit_mb: int = Field(4096, ge=0, description="address-space limit "
                                          "of the DICOM receiver process in MiB; 0 for none")
    max_image_pixels: int = Field(36_000_000, ge=4096, description="largest Rows x Columns "
                                  "accepted (checked from the header, before decoding)")
    require_called_aet: bool = Field(True, description="refuse associations addressed to "
                                     "another AE title than ae_title")
    tls_cert: str | None = Field(None, description="PEM certificate: HTTPS and DICOM TLS")
    tls_key: str | None = Field(None, description="PEM private key of tls_cert")
    organization: str = Field("radiolens", max_length=64,
                              description="verifying organization named in signed SRs")


def load_settings(overrides: dict[str, Any]) -> ServiceSettings:
    """Defaults, then ``RADIOLENS_*`` environment variables, then ``overrides`` (flags)."""
    values: dict[str, Any] = {}
    for name in ServiceSettings.model_fields:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None and env != "":
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ServiceSettings(**values)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid service settings: " + "; ".join(parts)) from None


def read_or_create_token(settings: ServiceSettings) -> tuple[str, bool]:
    """The API token: the setting, else ``data_dir/api_token`` (created on first start,
    readable by the owner only). Returns ``(token, created)``."""
    if settings.api_token:
        return settings.api_token, False
    path = settings.data_dir / "api_token"
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token, False
    token = secrets.token_urlsafe(24)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token, True
