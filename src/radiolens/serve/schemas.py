"""Request and response models of the triage API (pydantic; shown in the OpenAPI docs)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DeliveryOut",
    "DraftOut",
    "HealthOut",
    "InfoOut",
    "InstanceOut",
    "PriorityIn",
    "ResultOut",
    "ReviewIn",
    "ReviewOut",
    "StudyDetailOut",
    "StudyLinks",
    "StudyOut",
    "UploadItem",
    "UploadOut",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PriorityIn(_In):
    """A person's priority for a study (never lowered by a later model result)."""

    priority: int = Field(ge=0, le=100, description="0..100, higher is read first")
    reviewer: str = Field(min_length=1, max_length=128, description="who set it")


class ReviewIn(_In):
    """A radiologist's review of the AI draft."""

    action: Literal["accept", "correct"]
    reviewer: str = Field(min_length=1, max_length=128)
    text: str | None = Field(
        default=None, max_length=100_000, description="the corrected report (for 'correct')"
    )


class HealthOut(BaseModel):
    """Liveness, version and the number of studies in each status."""

    status: str
    version: str
    disclaimer: str
    counts: dict[str, int]
    #: why the service is degraded; only shown to a request with the API token
    reasons: list[str] | None = None


class InfoOut(BaseModel):
    """What the web UI shows in its header."""

    version: str
    disclaimer: str
    model_name: str
    ae_title: str
    dicom_port: int | None


class StudyLinks(BaseModel):
    """API URLs of a study's outputs (None until the study is scored)."""

    self: str
    draft: str | None = None
    fhir: str | None = None
    sr: str | None = None
    heatmap: str | None = None


class StudyOut(BaseModel):
    """One row of the worklist."""

    study_instance_uid: str
    status: str
    priority: int
    priority_set_by: str | None
    flags: list[str]
    findings: dict[str, float]
    received_at: dt.datetime
    scored_at: dt.datetime | None
    patient_id: str | None
    patient_name: str | None
    accession_number: str | None
    modality: str | None
    description: str | None
    error: str | None
    model_name: str | None
    model_version: str | None
    links: StudyLinks


class InstanceOut(BaseModel):
    """One stored DICOM instance."""

    sop_instance_uid: str
    series_instance_uid: str | None
    sop_class_uid: str | None
    received_at: dt.datetime
    size_bytes: int


class ResultOut(BaseModel):
    """One model result (a study scored again keeps every result)."""

    id: int
    model: str
    model_version: str | None
    findings: dict[str, float]
    flags: list[str]
    thresholds: dict[str, float]
    priority: int
    heatmaps: dict[str, str] = Field(description="finding -> heatmap URL")
    has_draft: bool
    has_sr: bool
    created_at: dt.datetime


class ReviewOut(BaseModel):
    """A recorded review."""

    id: int
    reviewer: str
    action: str
    text: str | None
    priority: int | None
    created_at: dt.datetime


class DeliveryOut(BaseModel):
    """A result sent (or being sent) back to a PACS or RIS."""

    id: int
    study_instance_uid: str | None
    kind: str
    destination: str
    payload_path: str | None
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    updated_at: dt.datetime


class StudyDetailOut(StudyOut):
    """A study with its instances, results (latest first), reviews and deliveries."""

    instances: list[InstanceOut]
    results: list[ResultOut]
    reviews: list[ReviewOut]
    deliveries: list[DeliveryOut]


class DraftOut(BaseModel):
    """The preliminary AI draft report of a study."""

    study_instance_uid: str
    text: str
    disclaimer: str
    status: Literal["preliminary"] = "preliminary"


class UploadItem(BaseModel):
    """What happened to one uploaded file."""

    filename: str
    status: Literal["stored", "duplicate", "refused"]
    study_instance_uid: str | None = None
    error: str | None = None


class UploadOut(BaseModel):
    """The outcome of an upload, file by file."""

    files: list[UploadItem]
    disclaimer: str
