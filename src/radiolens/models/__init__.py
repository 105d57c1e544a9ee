"""Models: a registry over MONAI networks, run directories, published weights, ONNX.

The metadata (:class:`ModelInfo`, :class:`Preprocessing`, :func:`read_model_info`,
:func:`resolve_run_dir`, :func:`builtin_names`, :func:`write_model_info`) needs no torch
(:mod:`radiolens.models.info`); everything else needs the ``train`` extra (torch, MONAI,
safetensors; onnx and onnxruntime for export) and is imported on first use. Every model
returns logits ``(N, n_outputs)`` in the order of ``info.labels``.

Example:
    >>> from radiolens.models import build_model, MODEL_NAMES   # doctest: +SKIP
    >>> model = build_model("densenet121", n_outputs=14)         # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from radiolens.models.info import (
    ModelInfo,
    Preprocessing,
    builtin_names,
    read_model_info,
    resolve_run_dir,
    write_model_info,
)

if TYPE_CHECKING:
    from radiolens.models.checkpoint import load_run, save_run
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

#: Name -> the submodule (needing torch) that defines it.
_LAZY = {
    "load_run": "checkpoint", "save_run": "checkpoint",
    "export_onnx": "export", "onnx_session": "export", "read_onnx_info": "export",
    "PretrainedReport": "pretrained", "convert_chexnet": "pretrained",
    "freeze_backbone": "pretrained", "load_pretrained": "pretrained",
    "read_state_dict": "pretrained", "to_monai_densenet_keys": "pretrained",
    "MODEL_NAMES": "registry", "build_model": "registry",
    "gradcam_target_layer": "registry", "head_layer": "registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from radiolens.models import _require  # noqa: F401  (MissingDependencyError)

        return getattr(importlib.import_module(f"radiolens.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'radiolens.models' has no attribute {name!r}")


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
