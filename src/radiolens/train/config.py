"""Training configuration: one pydantic model for the YAML file and the command line.

Flags override the YAML file; the resolved configuration is written next to the
checkpoint (``RUN_DIR/config.yaml``) so every run can be repeated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from radiolens._suggest import did_you_mean
from radiolens.errors import ConfigError

__all__ = ["TrainConfig", "load_train_config"]


class TrainConfig(BaseModel):
    """Everything ``radiolens train`` needs.

    Example:
        >>> TrainConfig(data="labels.csv", output="runs/pneumonia").model
        'densenet121'
    """

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="label table (CSV), or a folder per class, NIH or CheXpert")
    output: str = Field(description="run directory to write")
    data_format: Literal["table", "folders", "nih", "chexpert", "report-labels"] = "table"
    images_root: str | None = None
    where: dict[str, str] | None = Field(
        None, description="keep only rows whose column matches, e.g. "
                          "{source: kermany_pneumonia}")
    skip_unreadable: bool = False
    skip_missing: bool = Field(False, description="drop rows whose image file does not exist "
                                                  "(with a warning) instead of stopping")
    report_labels: str | None = Field(None, description="label table from `radiolens label`, "
                                                        "for data_format report-labels")
    labels: str = "pneumonia"
    uncertain: Literal["ignore", "zeros", "ones"] = "ignore"
    model: str = "densenet121"
    image_size: int = Field(224, ge=32, le=2048)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: float = Field(0.0, ge=0)
    seed: int = 0
    val_fraction: float = Field(0.1, gt=0, lt=1)
    init: str | None = None
    freeze_backbone: bool = False
    imbalance: Literal["pos-weight", "sampler", "none"] = "pos-weight"
    augment: bool = True
    patience: int = Field(5, ge=1, description="epochs without a better validation AUROC "
                                               "before stopping")
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    workers: int = Field(2, ge=0)
    cache: bool = False
    tensorboard: bool = False
    threshold_method: str = "youden"
    limit: int | None = Field(None, ge=1, description="use at most this many training "
                                                      "images (smoke runs)")
    limit_val: int | None = Field(None, ge=1, description="use at most this many validation "
                                                          "images (default: all)")
    half: bool = Field(False, description="store the weights in fp16")
    mean: float = 0.5
    std: float = 0.25
    crop: Literal["none", "lungs"] = Field(
        "none", description="lungs: crop each image to its lung field (segmented with "
                            "lung_model) in training and at inference")
    outside_lungs: Literal["keep", "dim"] = Field(
        "keep", description="dim: darken pixels outside the lungs (dim_factor)")
    dim_factor: float = Field(0.3, ge=0, le=1)
    lung_model: str = "builtin:lungs"
    attention_penalty: float = Field(
        0.0, ge=0, description="weight of a loss term on the class activation map's mass "
                               "outside the lungs (0: off)")
    shortcut_augment: bool = Field(False, description="augmentation that breaks border and "
                                                      "marker shortcuts")
    ema: float = Field(0.0, ge=0, lt=1, description="decay of an exponential moving average "
                                                     "of the weights, which validation and "
                                                     "the saved model use (0: off; e.g. 0.99)")

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from radiolens.models import MODEL_NAMES

        if value not in MODEL_NAMES:
            raise ValueError(f"unknown model {value!r}{did_you_mean(value, MODEL_NAMES)}; "
                             f"choose from {', '.join(MODEL_NAMES)}")
        return value

    @field_validator("threshold_method")
    @classmethod
    def _known_threshold_method(cls, value: str) -> str:
        from radiolens.evaluate import check_threshold_method

        try:
            return check_threshold_method(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


def load_train_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Read ``path`` (YAML, optional) and apply ``overrides`` (flags that were given).

    Raises:
        ConfigError: the file is unreadable or a field is unknown or invalid.
    """
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {str(p)!r} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: a training config must be a mapping of field: value")
        values.update({str(k).replace("-", "_"): v for k, v in loaded.items()})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from None


def _explain(exc: ValidationError, path: str | Path | None) -> str:
    fields = list(TrainConfig.model_fields)
    parts = []
    for err in exc.errors():
        name = ".".join(str(x) for x in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown field {name!r}{did_you_mean(name, fields)}")
        elif err["type"] == "missing":
            parts.append(f"{name!r} is required (--{name.replace('_', '-')})")
        else:
            parts.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    where = f"{path}: " if path else ""
    return where + "; ".join(parts)
