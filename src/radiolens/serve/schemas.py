"""Request and response models of the triage API (pydantic; shown in the OpenAPI docs)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AgreementOut",
    "AgreementRow",
    "BoxIn",
    "DeliveryOut",
    "DraftOut",
    "HealthOut",
    "InfoOut",
    "InstanceOut",
    "LungQualityOut",
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
    """A person's priority for a study (never lowered by a later model result); the
    signed-in user is recorded as who set it."""

    priority: int = Field(ge=0, le=100, description="0..100, higher is read first")


class BoxIn(_In):
    """A box around a finding, in image pixel coordinates of one instance."""

    finding: str = Field(min_length=1, max_length=64)
    sop_instance_uid: str = Field(default="", max_length=64)
    x: float = Field(ge=0)
    y: float = Field(ge=0)
    w: float = Field(gt=0)
    h: float = Field(gt=0)


class ReviewIn(_In):
    """A radiologist's signed read: a call per finding and the report as signed.

    ``result_id`` is the result the reviewer saw; when the study was scored again since,
    or is signed already (and ``amend`` is false), the answer is 409.
    """

    result_id: int | None = Field(description=(
        "id of the result shown (GET /api/studies/{uid}); null closes a study the model "
        "could not score (needs-check, failed), with no calls"))
    calls: dict[str, Literal["present", "absent", "uncertain"]] = Field(
        description="finding -> present / absent / uncertain, for every finding scored")
    text: str = Field(min_length=1, max_length=100_000, description="the report as signed")
    boxes: list[BoxIn] = Field(default_factory=list, max_length=100)
    amend: bool = Field(default=False, description="amend the signed read (a new version)")


class HealthOut(BaseModel):
    """Liveness, version and the number of studies in each status."""

    status: str
    version: str
    disclaimer: str
    #: studies per status and why the service is degraded: only when signed in
    counts: dict[str, int] | None = None
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
    lungs: str | None = Field(default=None, description="the lung mask PNG (when segmented)")
    seg: str | None = Field(default=None, description="the lung DICOM Segmentation")


class LungQualityOut(BaseModel):
    """Whether the lung mask of the scored image is plausible for a frontal chest
    radiograph; ``reasons`` say why not."""

    ok: bool
    reasons: list[str]
    lung_fraction: float = Field(description="share of the image the lungs cover, 0..1")


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
    patient_sex: str | None = None
    patient_age: str | None = Field(default=None, description="on the study date, e.g. 045Y")
    reviewed_by: str | None = None
    reviewed_at: dt.datetime | None = None
    image_check: str | None = Field(default=None, description=(
        "why the lung mask looks implausible (\"check image: <reasons>\" in the UI); the "
        "study is scored all the same"))
    lung_quality: LungQualityOut | None = Field(
        default=None, description="the lung mask check (null: no lung segmentation)")
    lung_instance: str | None = Field(
        default=None, description="SOP Instance UID of the image the lung mask is of")
    heat_in_lungs: dict[str, float] = Field(default_factory=dict, description=(
        "flagged finding -> share of its heatmap inside the lungs, 0..1"))
    attention_warning: str | None = Field(default=None, description=(
        "\"AI attention outside the lungs: check (...)\" when a flagged finding's heatmap "
        "lies mostly outside the lungs"))
    outputs_pending: list[str] = Field(default_factory=list, description=(
        "standard outputs of the latest result still being built (sr, lung_seg, "
        "heatmap_sc, fhir, hl7): a study is on the worklist before them"))
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
    heatmaps: dict[str, str] = Field(description="finding -> heatmap overlay URL (RGB)")
    heatmap_maps: dict[str, str] = Field(
        default_factory=dict, description="finding -> URL of the 8-bit importance map")
    heatmap_instances: dict[str, str] = Field(
        default_factory=dict, description="finding -> SOP Instance UID the map belongs to")
    has_draft: bool
    has_sr: bool
    created_at: dt.datetime


class ReviewOut(BaseModel):
    """A recorded review: a signed read (``sign``, ``amend``) or a reprioritisation."""

    id: int
    study_instance_uid: str
    reviewer: str
    action: str
    text: str | None
    priority: int | None
    created_at: dt.datetime
    version: int | None = None
    result_id: int | None = None
    calls: dict[str, str] | None = None
    boxes: list[dict[str, Any]] | None = None
    #: outputs that could not be made for a signed read (the read is recorded all the same)
    warnings: list[str] = Field(default_factory=list)


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
    """A study's report: the preliminary AI draft, or once signed the final report."""

    study_instance_uid: str
    text: str
    disclaimer: str
    status: Literal["preliminary", "final", "amended"] = "preliminary"
    final: bool = False
    signed_by: str | None = None
    signed_at: dt.datetime | None = None
    version: int | None = None


class AgreementRow(BaseModel):
    """The model against the reviewers for one finding (uncertain calls left out)."""

    finding: str
    n: int
    sensitivity: float | None
    sensitivity_ci: tuple[float, float] | None
    specificity: float | None
    specificity_ci: tuple[float, float] | None
    card_sensitivity: float | None
    card_specificity: float | None
    drift: bool


class AgreementOut(BaseModel):
    """Agreement over the last signed reads, and a warning when it drifted."""

    last_n: int
    reviews: int
    findings: list[AgreementRow]
    warning: str | None


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
