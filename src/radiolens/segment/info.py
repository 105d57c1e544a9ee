"""Segmentation run directories' metadata (``model.json``), torch-free.

A segmentation run directory holds ``model.safetensors`` (the network's state dict) and a
``model.json`` with ``"format": "radiolens-seg-model"``: the network, the input size and
normalisation, the probability threshold, the post-processing, training and validation
figures. ``builtin:NAME`` resolves like the classifiers' (``builtin:lungs``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from radiolens.errors import CheckpointError

__all__ = ["SEG_ARCHITECTURES", "SEG_FORMAT", "SegModelInfo", "read_seg_info",
           "write_seg_info"]

SEG_FORMAT = "radiolens-seg-model"
#: Networks ``radiolens train-seg --model`` can build (both from MONAI).
SEG_ARCHITECTURES: tuple[str, ...] = ("unet", "attention-unet")


class SegModelInfo(BaseModel):
    """What a lung segmentation network needs at inference, and how it was made."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["radiolens-seg-model"] = "radiolens-seg-model"
    version: Literal[1] = 1
    radiolens_version: str = ""
    architecture: Literal["unet", "attention-unet"]
    architecture_args: dict[str, Any] = Field(default_factory=dict)
    target: str = "lungs"
    image_size: int = Field(ge=32, description="side of the square network input")
    mean: float = 0.5
    std: float = Field(default=0.25, gt=0)
    threshold: float = Field(default=0.5, gt=0, lt=1)
    postprocess: str = "two largest components, holes filled"
    training: dict[str, Any] = Field(default_factory=dict)
    validation: dict[str, Any] = Field(default_factory=dict)
    created: str = ""


def read_seg_info(run_dir: str | os.PathLike[str]) -> SegModelInfo:
    """Read a segmentation run directory's ``model.json`` (or ``builtin:NAME``).

    Raises:
        CheckpointError: not a segmentation run directory, or its model.json is invalid.
    """
    from radiolens.models.info import INFO_FILE, resolve_run_dir

    folder = resolve_run_dir(run_dir)
    path = folder / INFO_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist; give a run directory written by "
                              "`radiolens train-seg` or builtin:lungs") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SEG_FORMAT:
        what = data.get("format") if isinstance(data, dict) else None
        hint = (" (it is a classifier; give a segmentation model such as builtin:lungs)"
                if what == "radiolens-model" else "")
        raise CheckpointError(f"{folder} is not a lung segmentation model{hint}")
    try:
        return SegModelInfo(**data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise CheckpointError(f"{path}: invalid segmentation model info ({problems})") from None


def write_seg_info(run_dir: str | os.PathLike[str], info: SegModelInfo) -> Path:
    """Write ``model.json`` atomically."""
    from radiolens._fs import write_atomic
    from radiolens.models.info import INFO_FILE

    path = Path(run_dir) / INFO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (info.model_dump_json(indent=2) + "\n").encode())
    return path
