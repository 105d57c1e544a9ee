"""ONNX export and onnxruntime sessions for fast CPU inference.

The exported graph takes ``image`` ``(batch, channels, size, size)`` float32 and returns
``logits`` ``(batch, n_outputs)``; the batch axis is dynamic. For the architectures in
``EXACT_CAM_ARCHITECTURES`` it also returns ``cams`` ``(batch, n_outputs, h, w)``: each
output's class activation map at the last feature map (head weights times features),
which equals Grad-CAM there (:mod:`radiolens.explain.cam`). The run's ``model.json`` is
embedded in the ONNX metadata (key ``radiolens_model_info``), so the label order travels
with the file.

Example:
    >>> from radiolens.models import load_run, export_onnx, onnx_session   # doctest: +SKIP
    >>> model, info = load_run("runs/effusion")                             # doctest: +SKIP
    >>> export_onnx(model, info, "runs/effusion/model.onnx")                # doctest: +SKIP
    >>> sess = onnx_session("runs/effusion/model.onnx")                     # doctest: +SKIP
    >>> logits = sess.run(["logits"], {"image": batch})[0]                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radiolens.errors import CheckpointError, MissingDependencyError
from radiolens.models.info import EXACT_CAM_ARCHITECTURES, EXPORT_VERSION, ModelInfo
from radiolens.models.onnx_runtime import onnx_session

__all__ = [
    "CAM_NAME",
    "EXPORT_VERSION",
    "INPUT_NAME",
    "ONNX_INFO_KEY",
    "OPSET",
    "OUTPUT_NAME",
    "export_onnx",
    "onnx_session",
    "read_onnx_info",
]

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
CAM_NAME = "cams"
OPSET = 17
#: ONNX metadata key that holds the run's ``model.json``.
ONNX_INFO_KEY = "radiolens_model_info"


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("onnx", "train") from None
    return onnx


class _WithCams(nn.Module):
    """``model`` returning its logits and the class activation maps of every output."""

    def __init__(self, model: nn.Module, feature_layer: str, head: nn.Linear) -> None:
        super().__init__()
        self.model = model
        self.head = head
        self._features: list[torch.Tensor] = []
        model.get_submodule(feature_layer).register_forward_hook(
            lambda _m, _i, out: self._features.append(out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._features.clear()
        logits = self.model(x)
        cams = torch.einsum("lk,nkhw->nlhw", self.head.weight, self._features[-1])
        return logits, cams


def _exported(model: nn.Module, architecture: str) -> tuple[nn.Module, list[str]]:
    """What to trace and its output names: with ``cams`` where they are exact."""
    if architecture not in EXACT_CAM_ARCHITECTURES:
        return model, [OUTPUT_NAME]
    import copy

    from radiolens.models.registry import gradcam_target_layer, head_layer

    twin = copy.deepcopy(model)  # the hook must not stay on the caller's model
    head = twin.get_submodule(head_layer(architecture))
    assert isinstance(head, nn.Linear)
    return _WithCams(twin, gradcam_target_layer(architecture), head), [OUTPUT_NAME, CAM_NAME]


def export_onnx(model: nn.Module, info: ModelInfo, path: str | os.PathLike[str],
                check: bool = True) -> Path:
    """Export ``model`` to ONNX (legacy TorchScript exporter, opset 17, dynamic batch).

    Args:
        model: the model; it is exported in eval mode and its mode is restored after.
        info: its metadata; gives the input shape and is embedded in the file.
        path: the ``.onnx`` file to write (its folder is created if needed).
        check: run ``onnx.checker`` on the result.

    Returns:
        The written path.

    Raises:
        CheckpointError: if export or the check fails.
        MissingDependencyError: if ``onnx`` is not installed.
    """
    onnx = _import_onnx()
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    pre = info.preprocessing
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    dummy = torch.zeros(1, pre.channels, pre.image_size, pre.image_size, device=device)
    was_training = model.training
    model.eval()
    traced, outputs = _exported(model, info.architecture)
    traced.eval()
    try:
        with warnings.catch_warnings():
            # The legacy exporter is deprecated in favour of dynamo, but is 3x faster here
            # and gives the same graph; the warning says nothing the user can act on.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # EfficientNet's padding makes the exporter note a Slice it cannot fold; harmless.
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            torch.onnx.export(
                traced, (dummy,), str(out), dynamo=False, opset_version=OPSET,
                input_names=[INPUT_NAME], output_names=outputs,
                dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in outputs}},
            )
    except Exception as exc:
        raise CheckpointError(f"ONNX export of {info.architecture} failed: {exc}") from exc
    finally:
        model.train(was_training)
    proto = onnx.load(str(out))
    entry = proto.metadata_props.add()
    entry.key = ONNX_INFO_KEY
    entry.value = info.model_dump_json()
    proto.producer_name = "radiolens"
    proto.producer_version = info.radiolens_version
    onnx.save(proto, str(out))
    if check:
        try:
            onnx.checker.check_model(str(out))
        except onnx.checker.ValidationError as exc:
            raise CheckpointError(f"the exported {out} fails onnx.checker: {exc}") from exc
    logger.info("exported %s to %s", info.architecture, out)
    return out


def read_onnx_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Return the :class:`ModelInfo` embedded by :func:`export_onnx` in an ONNX file.

    Raises:
        CheckpointError: if the file is missing or was not exported by radiolens.
    """
    onnx = _import_onnx()
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(f"ONNX file {str(file)!r} does not exist; check the path")
    proto = onnx.load(str(file), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == ONNX_INFO_KEY:
            try:
                return ModelInfo.model_validate_json(entry.value)
            except ValueError as exc:
                raise CheckpointError(f"the model info in {file} is invalid: {exc}") from exc
    raise CheckpointError(f"{file} has no radiolens model info; export it with "
                          "radiolens.models.export_onnx")
