"""Run directories: model weights (safetensors) plus metadata (``model.json``).

A run directory holds two files:

* ``model.safetensors``: the state dict, fp32 or fp16 (``save_run(..., half=True)``);
  never a pickle, so loading a run cannot execute code.
* ``model.json``: a :class:`ModelInfo`: architecture, label order, preprocessing,
  thresholds, training summary and validation metrics.

``load_run`` accepts a folder or ``builtin:NAME`` for a model shipped in
``radiolens/models/builtin/NAME/``.

Example:
    >>> from radiolens.models import build_model, save_run, load_run  # doctest: +SKIP
    >>> save_run("runs/effusion", model, info)                         # doctest: +SKIP
    >>> model, info = load_run("runs/effusion")                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from radiolens.errors import CheckpointError, ConfigError
from radiolens.models.info import (
    INFO_FILE,
    MODEL_FORMAT,
    WEIGHTS_FILE,
    ModelInfo,
    _atomic_write,
    read_model_info,
    resolve_run_dir,
)
from radiolens.models.registry import build_model

__all__ = ["load_run", "save_run"]  # the metadata lives in radiolens.models.info

logger = logging.getLogger(__name__)

_SHOW = 5  # how many offending keys an error message lists


def _build_from_info(info: ModelInfo) -> nn.Module:
    try:
        return build_model(info.architecture, info.n_outputs, **info.architecture_args)
    except ConfigError as exc:
        raise CheckpointError(
            f"cannot build the model described by {INFO_FILE} ({exc}); check "
            "'architecture' and 'architecture_args'"
        ) from exc


def _keys_report(missing: Iterable[str], unexpected: Iterable[str],
                 shapes: Iterable[str] = ()) -> str:
    parts = []
    for what, keys in (("missing", list(missing)), ("unexpected", list(unexpected)),
                       ("wrong shape", list(shapes))):
        if keys:
            shown = ", ".join(keys[:_SHOW]) + (f", ... ({len(keys)} in all)"
                                               if len(keys) > _SHOW else "")
            parts.append(f"{what}: {shown}")
    return "; ".join(parts)


def _compare(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> str:
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {tuple(got[k].shape)} != {tuple(expected[k].shape)}"
              for k in expected if k in got and got[k].shape != expected[k].shape]
    return _keys_report(missing, unexpected, shapes)


def save_run(run_dir: str | os.PathLike[str], model: nn.Module, info: ModelInfo,
             half: bool = False) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``run_dir`` (created if needed).

    Args:
        run_dir: the run directory; existing model files in it are replaced.
        model: the trained model; it must match ``info.architecture``,
            ``info.architecture_args`` and ``len(info.labels)``.
        info: the metadata to write.
        half: store floating-point weights as fp16 (half the size; they load back as fp32).

    Returns:
        The run directory.

    Raises:
        CheckpointError: if the model does not match ``info`` or the files cannot be written.
    """
    from safetensors.torch import save_file

    with torch.device("meta"):
        reference = _build_from_info(info)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    problem = _compare(reference.state_dict(), state)
    if problem:
        raise CheckpointError(
            f"the model does not match model info (architecture={info.architecture!r}, "
            f"architecture_args={info.architecture_args}, {info.n_outputs} labels): {problem}; "
            "build the model with build_model(info.architecture, len(info.labels), "
            "**info.architecture_args)"
        )
    tensors = {}
    for key, value in state.items():
        value = value.to("cpu")
        if half and value.is_floating_point():
            value = value.to(torch.float16)
        tensors[key] = value.contiguous()
    try:
        info_json = info.model_dump_json(indent=2)
    except Exception as exc:  # pydantic raises for values JSON cannot hold
        raise CheckpointError(
            f"model info cannot be written as JSON ({exc}); keep 'training', 'validation' "
            "and 'architecture_args' to plain numbers, strings, lists and dicts"
        ) from exc
    folder = Path(run_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        metadata = {"format": MODEL_FORMAT, "dtype": "float16" if half else "float32"}
        _atomic_write(folder / WEIGHTS_FILE,
                      lambda tmp: save_file(tensors, tmp, metadata=metadata))
        _atomic_write(folder / INFO_FILE,
                      lambda tmp: Path(tmp).write_text(info_json + "\n", encoding="utf-8"))
    except OSError as exc:
        raise CheckpointError(f"cannot write the run directory {str(folder)!r}: {exc}") from exc
    logger.info("saved %s (%s, %d labels%s) to %s", info.architecture, info.task,
                info.n_outputs, ", fp16" if half else "", folder)
    return folder


def load_run(run_dir_or_builtin: str | os.PathLike[str],
             device: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Build the model a run directory describes, load its weights and set eval mode.

    Args:
        run_dir_or_builtin: a run directory (or its ``model.json``), or ``builtin:NAME``.
        device: where to put the model (``"cpu"``, ``"cuda"``, ...).

    Returns:
        ``(model, info)``; ``model`` returns logits in the order of ``info.labels``.

    Raises:
        CheckpointError: if anything is missing, unreadable or does not match.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = resolve_run_dir(run_dir_or_builtin)
    info = read_model_info(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(
            f"{str(folder)!r} has {INFO_FILE} but no {WEIGHTS_FILE}; the run was not saved "
            "completely. Re-run training or copy the weights file into the folder"
        )
    model = _build_from_info(info)
    try:
        state = load_file(weights, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read {weights} ({exc}); the file is damaged or not safetensors. "
            "Restore it from a backup or re-run training"
        ) from exc
    expected = model.state_dict()
    problem = _compare(expected, state)
    if problem:
        raise CheckpointError(
            f"the weights in {weights} do not fit a {info.architecture} with "
            f"{info.n_outputs} outputs and args {info.architecture_args}: {problem}. "
            f"{INFO_FILE} and {WEIGHTS_FILE} probably come from different runs"
        )
    for key, value in state.items():
        if value.is_floating_point() and value.dtype != expected[key].dtype:
            state[key] = value.to(expected[key].dtype)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    logger.info("loaded %s (%d labels) from %s", info.architecture, info.n_outputs, folder)
    return model, info
