"""Save and load segmentation run directories (safetensors weights + ``model.json``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from radiolens.errors import CheckpointError
from radiolens.segment.info import SegModelInfo, read_seg_info, write_seg_info
from radiolens.segment.nets import build_seg_net

__all__ = ["load_seg_run", "save_seg_run"]


def save_seg_run(run_dir: str | os.PathLike[str], model: nn.Module, info: SegModelInfo) -> Path:
    """Write ``model.safetensors`` and ``model.json`` to ``run_dir``."""
    from safetensors.torch import save_file

    from radiolens.models.info import WEIGHTS_FILE

    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = folder / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(tmp), metadata={"format": "radiolens-seg-model"})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, folder / WEIGHTS_FILE)
    write_seg_info(folder, info)
    return folder


def load_seg_run(ref: str | os.PathLike[str], device: str | torch.device = "cpu"
                 ) -> tuple[nn.Module, SegModelInfo]:
    """The network (eval mode) and its info from a run directory or ``builtin:NAME``.

    Raises:
        CheckpointError: not a segmentation run, or the weights do not fit the network.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from radiolens.models.info import WEIGHTS_FILE, resolve_run_dir

    info = read_seg_info(ref)
    folder = resolve_run_dir(ref)
    weights = folder / WEIGHTS_FILE
    try:
        state = load_file(str(weights), device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{weights} does not exist") from None
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights} is not a safetensors file ({exc})") from None
    model = build_seg_net(info.architecture, **info.architecture_args)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"the weights in {weights} do not fit a {info.architecture} "
                              f"with {info.architecture_args}: {first}") from None
    return model.to(device).eval(), info


def export_seg_onnx(model: nn.Module, info: SegModelInfo, path: str | os.PathLike[str]
                    ) -> Path:
    """Export a segmentation network to ONNX: input ``image`` ``(batch, 1, S, S)``,
    output ``logits`` of the same shape, dynamic batch (legacy exporter, opset 17).

    Raises:
        CheckpointError: the export failed.
    """
    import warnings

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 1, info.image_size, info.image_size)
    model = model.to("cpu").eval()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # MONAI's U-Net normalises each image by itself (InstanceNorm without running
            # statistics), which the exporter reports as "train=True": that is what we want.
            warnings.filterwarnings("ignore", message=".*instance_norm")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(model, (dummy,), str(out), dynamo=False, opset_version=17,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    except Exception as exc:
        raise CheckpointError(f"ONNX export of the {info.architecture} failed: {exc}") from exc
    return out
