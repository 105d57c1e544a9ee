"""Run-directory metadata without torch: ``model.json`` (:class:`ModelInfo`, with the
:class:`Preprocessing` that training and inference share), locating run directories and
``builtin:NAME`` models. Scoring through ONNX Runtime needs nothing else.

Example:
    >>> from radiolens.models.info import read_model_info   # doctest: +SKIP
    >>> read_model_info("builtin:pneumonia-kermany").labels   # doctest: +SKIP
    ['pneumonia']
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from radiolens.errors import CheckpointError

__all__ = [
    "ARCHITECTURES",
    "BUILTIN_DIR",
    "BUILTIN_PREFIX",
    "EXACT_CAM_ARCHITECTURES",
    "EXPORT_VERSION",
    "INFO_FILE",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "WEIGHTS_FILE",
    "Int8Record",
    "ModelInfo",
    "Preprocessing",
    "builtin_names",
    "read_model_info",
    "resolve_run_dir",
    "write_model_info",
]

logger = logging.getLogger(__name__)

#: The classifier architectures ``model.json`` may name (built by ``models.registry``).
ARCHITECTURES: tuple[str, ...] = ("densenet121", "resnet18", "resnet50", "efficientnet-b0",
                                  "small-vgg")
#: Architectures whose Grad-CAM target layer feeds global average pooling and one linear
#: layer, so the class activation map from that layer is exactly Grad-CAM: their ONNX
#: export returns the maps beside the logits (heatmaps without torch).
EXACT_CAM_ARCHITECTURES: tuple[str, ...] = ("densenet121", "resnet18", "resnet50")
#: The ONNX export's graph version (logits + cams); cached exports of another are redone.
EXPORT_VERSION = "2: logits + cams"
WEIGHTS_FILE = "model.safetensors"
INFO_FILE = "model.json"
MODEL_FORMAT = "radiolens-model"
MODEL_FORMAT_VERSION = 1
BUILTIN_PREFIX = "builtin:"
#: Where ``builtin:NAME`` run directories live inside the installed package.
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"

_BUILTIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHOW = 5  # how many offending keys an error message lists


def _radiolens_version() -> str:
    from radiolens import __version__

    return __version__


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Preprocessing(BaseModel):
    """How images must be prepared for the model; inference repeats training exactly.

    Pixels are scaled to [0, 1], resized to ``image_size`` x ``image_size`` (``squash``:
    no aspect-ratio preservation), then normalised as ``(x - mean) / std``, per channel
    when ``mean``/``std`` are lists.

    Example:
        >>> Preprocessing(image_size=224, channels=3, mean=[0.485, 0.456, 0.406],
        ...               std=[0.229, 0.224, 0.225]).mean_per_channel()
        [0.485, 0.456, 0.406]
    """

    model_config = ConfigDict(extra="forbid")

    image_size: int = Field(ge=16, description="side of the square model input, in pixels")
    channels: Literal[1, 3] = 1
    mean: float | list[float]
    std: float | list[float]
    resize: Literal["squash"] = "squash"
    crop: Literal["none", "lungs"] = Field(
        default="none", description="lungs: crop to the box around both lungs (from lung_model) "
                            "before resizing")
    outside_lungs: Literal["keep", "dim"] = Field(
        default="keep", description="dim: multiply pixels outside the lung mask by dim_factor")
    lung_model: str = Field(default="builtin:lungs", description="segmentation model for the crop")
    crop_margin: float = Field(default=0.05, ge=0, le=0.5)
    dim_factor: float = Field(default=0.3, ge=0, le=1)

    @property
    def uses_lungs(self) -> bool:
        """Whether preparing an image needs its lung mask."""
        return self.crop != "none" or self.outside_lungs != "keep"

    @model_validator(mode="after")
    def _check_stats(self) -> Preprocessing:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, list) and len(value) != self.channels:
                raise ValueError(
                    f"{name} has {len(value)} values but channels is {self.channels}; "
                    f"give one value or one per channel"
                )
        if any(s <= 0 for s in self.std_per_channel()):
            raise ValueError("std must be positive")
        return self

    def mean_per_channel(self) -> list[float]:
        """Return ``mean`` as one value per channel."""
        m = self.mean
        return list(m) if isinstance(m, list) else [m] * self.channels

    def std_per_channel(self) -> list[float]:
        """Return ``std`` as one value per channel."""
        s = self.std
        return list(s) if isinstance(s, list) else [s] * self.channels


class Int8Record(BaseModel):
    """What ``radiolens quantize`` measured for the run's int8 model (OpenVINO IR).

    The int8 model is used only when ``accepted`` and ``weights_sha256`` matches the
    run's weights; ``max_auroc_drop`` is the largest fall of any label's AUROC against
    fp32 on ``images`` validation images (the refusal limit is ``limit``).
    """

    model_config = ConfigDict(extra="forbid")

    file: str = "model.int8.xml"
    weights_sha256: str
    calibration_images: int = Field(ge=1)
    images: int = Field(ge=1)
    split: str = "val"
    auroc_fp32: dict[str, float | None]
    auroc_int8: dict[str, float | None]
    max_auroc_drop: float
    calls_changed: int = Field(ge=0)
    limit: float = 0.005
    accepted: bool
    tool: str = ""


class ModelInfo(BaseModel):
    """The metadata written as ``model.json`` next to the weights (format version 1).

    ``labels`` is the output order: logit ``i`` belongs to ``labels[i]``. ``thresholds``
    are operating points on sigmoid probabilities; a label without one has no operating
    point chosen. ``urgency`` ranks findings for the worklist (higher is more urgent).

    Example:
        >>> info = ModelInfo(architecture="densenet121", task="multilabel",
        ...                  labels=["Effusion", "Pneumothorax"],
        ...                  preprocessing=Preprocessing(image_size=224, mean=0.5, std=0.25),
        ...                  thresholds={"Effusion": 0.41, "Pneumothorax": 0.3},
        ...                  threshold_method="youden on validation")
        >>> info.format, info.version
        ('radiolens-model', 1)
    """

    model_config = ConfigDict(extra="forbid")

    format: Literal["radiolens-model"] = "radiolens-model"
    version: Literal[1] = 1
    radiolens_version: str = Field(default_factory=_radiolens_version)
    architecture: str
    architecture_args: dict[str, Any] = Field(default_factory=dict)
    task: Literal["binary", "multilabel"]
    labels: list[str] = Field(min_length=1)
    preprocessing: Preprocessing
    thresholds: dict[str, float] = Field(default_factory=dict)
    threshold_method: str = ""
    urgency: dict[str, int] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    validation: dict[str, Any] = Field(default_factory=dict)
    created: datetime = Field(default_factory=_now)
    notes: str = ""
    int8: Int8Record | None = None

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {value!r}; known: {', '.join(ARCHITECTURES)}")
        return value

    @field_validator("architecture_args")
    @classmethod
    def _no_reserved_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = {"name", "n_outputs"} & set(value)
        if reserved:
            raise ValueError(f"{sorted(reserved)} must not be in architecture_args "
                             "(the number of outputs is len(labels))")
        return value

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, value: list[str]) -> list[str]:
        if any(not label.strip() for label in value):
            raise ValueError("labels must be non-empty strings")
        dupes = sorted({label for label in value if value.count(label) > 1})
        if dupes:
            raise ValueError(f"duplicate labels: {dupes}")
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"thresholds are probabilities in [0, 1]; got {bad}")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> ModelInfo:
        if self.task == "binary" and len(self.labels) != 1:
            raise ValueError(
                f"a binary model has exactly one label (one sigmoid output), got {self.labels}; "
                "use task='multilabel' for several labels"
            )
        for name in ("thresholds", "urgency"):
            unknown = sorted(set(getattr(self, name)) - set(self.labels))
            if unknown:
                raise ValueError(f"{name} names labels the model does not output: {unknown}")
        in_channels = self.architecture_args.get("in_channels", 1)
        if in_channels != self.preprocessing.channels:
            raise ValueError(
                f"architecture_args in_channels={in_channels} but preprocessing.channels="
                f"{self.preprocessing.channels}; they must agree"
            )
        return self

    @property
    def n_outputs(self) -> int:
        """The number of logits the model returns (``len(labels)``)."""
        return len(self.labels)


# -- locating run directories ---------------------------------------------------------------

def builtin_names() -> list[str]:
    """Return the names usable as ``builtin:NAME`` (folders in :data:`BUILTIN_DIR`)."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / INFO_FILE).is_file())


def resolve_run_dir(ref: str | os.PathLike[str]) -> Path:
    """Turn a run directory path or ``builtin:NAME`` into an existing folder.

    A path to ``model.json`` or ``model.safetensors`` resolves to its folder.

    Raises:
        CheckpointError: when the folder (or the builtin model) does not exist.
    """
    text = os.fspath(ref)
    if text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX):]
        available = builtin_names()
        listed = ", ".join(available) if available else "none are installed"
        if not _BUILTIN_NAME.match(name) or name not in available:
            from radiolens._suggest import did_you_mean

            raise CheckpointError(
                f"no builtin model {name!r}{did_you_mean(name, available)}; available builtin "
                f"models: {listed}. Pass the path of a run directory instead, or install a "
                f"model folder (with {INFO_FILE} and {WEIGHTS_FILE}) in {BUILTIN_DIR}"
            )
        return BUILTIN_DIR / name
    path = Path(text).expanduser()
    if path.is_file() and path.name in (INFO_FILE, WEIGHTS_FILE):
        path = path.parent
    if not path.exists():
        raise CheckpointError(
            f"run directory {str(path)!r} does not exist; pass the folder written by "
            f"training (it holds {INFO_FILE} and {WEIGHTS_FILE}) or builtin:NAME"
        )
    if not path.is_dir():
        raise CheckpointError(
            f"{str(path)!r} is a file, not a run directory; pass the folder that holds "
            f"{INFO_FILE} and {WEIGHTS_FILE}"
        )
    return path


# -- reading and writing --------------------------------------------------------------------

def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:_SHOW]:
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - _SHOW
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def read_model_info(run_dir: str | os.PathLike[str]) -> ModelInfo:
    """Read and validate ``model.json`` of a run directory (or ``builtin:NAME``).

    Raises:
        CheckpointError: if the file is missing, is not JSON, is not a radiolens model
            file, has a format version this radiolens cannot read, or fails validation.
    """
    folder = resolve_run_dir(run_dir)
    path = folder / INFO_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{str(folder)!r} has no {INFO_FILE}; the run is incomplete or this is not a "
            "radiolens run directory. Re-run training, or convert published weights with "
            "radiolens.models.convert_chexnet"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path} is not valid JSON ({exc}); fix the file or restore it from a backup"
        ) from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not {type(data).__name__}")
    fmt = data.get("format")
    if fmt != MODEL_FORMAT:
        raise CheckpointError(
            f"{path} is not a radiolens model file (format is {fmt!r}, expected "
            f"{MODEL_FORMAT!r}); pass the run directory written by radiolens"
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} has an invalid format version {version!r}; expected "
                              f"{MODEL_FORMAT_VERSION}")
    if version > MODEL_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses model format version {version}, newer than this radiolens "
            f"({_radiolens_version()}) reads (version {MODEL_FORMAT_VERSION}); upgrade "
            "radiolens: pip install -U radiolens"
        )
    try:
        return ModelInfo.model_validate(data)
    except ValidationError as exc:
        raise CheckpointError(
            f"{path} is not a valid radiolens model file: {_format_validation_error(exc)}"
        ) from None


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a run directory is shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_model_info(run_dir: str | os.PathLike[str], info: ModelInfo) -> Path:
    """Replace ``model.json`` of an existing run directory (atomically); weights untouched.

    Raises:
        CheckpointError: ``run_dir`` is a builtin model (read-only) or has no weights,
            or the file cannot be written.
    """
    text = os.fspath(run_dir)
    if text.startswith(BUILTIN_PREFIX) or Path(text).resolve().parent == BUILTIN_DIR.resolve():
        raise CheckpointError(f"{text} is a builtin model and read-only; copy it to a run "
                              "directory of your own first")
    folder = resolve_run_dir(run_dir)
    if not (folder / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{str(folder)!r} has no {WEIGHTS_FILE}; it is not a run directory")
    try:
        _atomic_write(folder / INFO_FILE, lambda tmp: Path(tmp).write_text(
            info.model_dump_json(indent=2) + "\n", encoding="utf-8"))
    except OSError as exc:
        raise CheckpointError(f"cannot write {folder / INFO_FILE}: {exc}") from exc
    return folder


