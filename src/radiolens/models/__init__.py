"""Models: a registry over MONAI networks, run directories, published weights, ONNX.

Needs the ``train`` extra (torch, MONAI, safetensors, pydantic; onnx and onnxruntime for
export). Every model returns logits ``(N, n_outputs)`` in the order of ``info.labels``.

Example:
    >>> from radiolens.models import build_model, MODEL_NAMES   # doctest: +SKIP
    >>> model = build_model("densenet121", n_outputs=14)         # doctest: +SKIP
"""

from __future__ import annotations

from radiolens.models import _require  # noqa: F401  (MissingDependencyError without torch)
from radiolens.models.checkpoint import (
    ModelInfo,
    Preprocessing,
    builtin_names,
    load_run,
    read_model_info,
    resolve_run_dir,
    save_run,
    write_model_info,
)
from radiolens.models.export import export_onnx, onnx_session, read_onnx_info
from radiolens.models.pretrained import (
    PretrainedReport,
    convert_chexnet,
    freeze_backbone,
    load_pretrained,
    read_state_dict,
    to_monai_densenet_keys,
)
from radiolens.models.registry import (
    MODEL_NAMES,
    build_model,
    gradcam_target_layer,
    head_layer,
)

__all__ = [
    "MODEL_NAMES",
    "ModelInfo",
    "Preprocessing",
    "PretrainedReport",
    "build_model",
    "builtin_names",
    "convert_chexnet",
    "export_onnx",
    "freeze_backbone",
    "gradcam_target_layer",
    "head_layer",
    "load_pretrained",
    "load_run",
    "onnx_session",
    "read_model_info",
    "read_onnx_info",
    "read_state_dict",
    "resolve_run_dir",
    "save_run",
    "to_monai_densenet_keys",
    "write_model_info",
]
