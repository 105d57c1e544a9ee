"""Published DenseNet-121 weights in MONAI's DenseNet121: torchvision and CheXNet layouts.

Two layouts are understood, besides MONAI's own:

* torchvision: ``features.denseblock1.denselayer1.norm1.weight``, ``classifier.weight``.
* CheXNet (the reimplementation's ``model.pth.tar``): a dict whose ``state_dict`` has
  ``module.densenet121.features.denseblock1.denselayer1.norm.1.weight`` and
  ``module.densenet121.classifier.0.weight`` (old PyTorch names, DataParallel prefix).

Files are read with ``torch.load(weights_only=True)`` (or as safetensors), never by
unpickling arbitrary objects.

Example:
    >>> from radiolens.models import build_model, load_pretrained   # doctest: +SKIP
    >>> model = build_model("densenet121", n_outputs=3)               # doctest: +SKIP
    >>> report = load_pretrained(model, "densenet121-a639ec97.pth")   # doctest: +SKIP
    >>> report.folded_to_grey                                          # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from radiolens.errors import CheckpointError, ConfigError
from radiolens.findings import CHEXNET_ORDER
from radiolens.models.checkpoint import save_run
from radiolens.models.info import ModelInfo, Preprocessing
from radiolens.models.registry import build_model, check_model_name, head_layer

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PretrainedReport",
    "convert_chexnet",
    "freeze_backbone",
    "load_pretrained",
    "read_state_dict",
    "to_monai_densenet_keys",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_HEAD = "class_layers.out."
_STEM = "features.conv0.weight"
_PREFIXES = ("module.", "densenet121.", "model.")
# CheXNet / PyTorch < 0.4 names: "denselayer1.norm.1" -> "denselayer1.norm1"
_OLD_STYLE = re.compile(r"(denselayer\d+)\.(norm|relu|conv)\.(\d+)")
# torchvision dense layers -> MONAI's: "denselayer1.norm1" -> "denselayer1.layers.norm1"
_DENSE_LAYER = re.compile(r"(denseblock\d+\.denselayer\d+)\.(?!layers\.)")
_CLASSIFIER = re.compile(r"^classifier\.(?:\d+\.)?(weight|bias)$")


@dataclass(frozen=True)
class PretrainedReport:
    """What :func:`load_pretrained` did.

    Attributes:
        source_format: ``"chexnet"``, ``"torchvision"`` or ``"monai"``.
        loaded: number of tensors copied into the model.
        missing: model tensors the file did not provide (left as initialised), not
            counting BatchNorm ``num_batches_tracked`` counters and a head left new.
        unexpected: tensors in the file the model has no place for (ignored).
        head_loaded: whether the classification head came from the file.
        folded_to_grey: whether the 3-channel stem was summed to 1 channel.

    Example:
        >>> PretrainedReport("torchvision", 725, (), (), False, True).complete
        True
    """

    source_format: str
    loaded: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    head_loaded: bool
    folded_to_grey: bool

    @property
    def complete(self) -> bool:
        """True when every backbone tensor came from the file."""
        return not self.missing


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.pth``/``.pth.tar``/``.pt`` or ``.safetensors`` file.

    A dict with a ``state_dict`` entry (training checkpoints such as CheXNet's) is
    unwrapped. Pickled files are read with ``weights_only=True``.

    Raises:
        CheckpointError: if the file is missing, needs full unpickling, or holds no tensors.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(f"weights file {str(file)!r} does not exist; check the path")
    if file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(file, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {file} as safetensors: {exc}") from exc
    if not _looks_like_torch_file(file):
        raise CheckpointError(f"{file}: not a PyTorch checkpoint")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError... all mean "unusable"
        raise CheckpointError(_unsafe_message(file, exc)) from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{file} holds a {type(obj).__name__}, not a state dict")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{file} holds no tensors; is it a model checkpoint?")
    return tensors


def _looks_like_torch_file(file: Path) -> bool:
    """True for a zip archive (``torch.save``) or a pickle (legacy format) by magic bytes."""
    with file.open("rb") as fh:
        head = fh.read(2)
    return head == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _unsafe_message(file: Path, exc: BaseException) -> str:
    """One line for a torch file that ``torch.load(weights_only=True)`` refuses."""
    text = str(exc)
    if "Weights only load failed" not in text:
        return f"{file}: not a PyTorch checkpoint (or a damaged one)"
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    what = f" (it needs {found.group(1)})" if found else ""
    return (f"{file}: holds objects other than tensors{what}; radiolens reads only plain "
            "tensors (torch.load weights_only=True), because loading the rest would run code "
            "stored in the file. Re-save just the state dict from a trusted copy, or convert "
            "it to safetensors")


def _detect_format(keys: list[str]) -> str:
    if any(_OLD_STYLE.search(k) for k in keys):
        return "chexnet"
    if any(".layers." in k or k.startswith("class_layers.") for k in keys):
        return "monai"
    return "torchvision"


def to_monai_densenet_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision or CheXNet DenseNet state dict to MONAI DenseNet121's names.

    MONAI names pass through unchanged, so the function is idempotent.

    Example:
        >>> import torch
        >>> t = torch.zeros(1)
        >>> sorted(to_monai_densenet_keys({
        ...     "module.densenet121.features.denseblock1.denselayer1.norm.1.weight": t,
        ...     "module.densenet121.classifier.0.bias": t}))
        ['class_layers.out.bias', 'features.denseblock1.denselayer1.layers.norm1.weight']
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        stripped = True
        while stripped:
            stripped = False
            for prefix in _PREFIXES:
                if new.startswith(prefix):
                    new, stripped = new[len(prefix):], True
        new = _OLD_STYLE.sub(r"\1.\2\3", new)
        new = _DENSE_LAYER.sub(r"\1.layers.", new)
        new = _CLASSIFIER.sub(r"class_layers.out.\1", new)
        if new in out:
            raise CheckpointError(f"two tensors map to the same name {new!r} (one is {key!r});"
                                  " the file mixes layouts")
        out[new] = value
    return out


def load_pretrained(model: nn.Module, path: str | os.PathLike[str], fold_to_grey: bool = True,
                    keep_head: bool = True) -> PretrainedReport:
    """Load published DenseNet-121 weights (torchvision, CheXNet or MONAI layout) into ``model``.

    Args:
        model: a MONAI DenseNet121, e.g. ``build_model("densenet121", n, in_channels=1)``.
        path: the weights file (``.pth``, ``.pth.tar``, ``.pt`` or ``.safetensors``).
        fold_to_grey: when the model has 1 input channel and the file 3, sum the stem
            convolution over its input channels (the grey image stands for three equal RGB
            channels). Normalise grey input with about mean 0.449, std 0.226 to match.
        keep_head: also load the file's classification head when its shape matches the
            model's; otherwise (or when False) the model's new head is kept. A matching
            shape does not mean a matching label order: check it (CheXNet's is
            :data:`radiolens.findings.CHEXNET_ORDER`).

    Returns:
        A :class:`PretrainedReport`; missing and unexpected keys are also logged.

    Raises:
        CheckpointError: if the file cannot be read safely, matches nothing in the model,
            or has backbone tensors whose shapes differ from the model's.
    """
    source = read_state_dict(path)
    source_format = _detect_format(list(source))
    state = to_monai_densenet_keys(source)
    target = model.state_dict()

    folded = False
    stem = state.get(_STEM)
    if stem is not None and _STEM in target and stem.ndim == 4:
        want, have = target[_STEM].shape[1], stem.shape[1]
        if want == 1 and have == 3:
            if not fold_to_grey:
                raise CheckpointError(
                    f"{path} has a 3-channel stem but the model takes 1 channel; pass "
                    "fold_to_grey=True or build the model with in_channels=3"
                )
            state[_STEM] = stem.sum(dim=1, keepdim=True)
            folded = True
        elif want != have:
            raise CheckpointError(f"{path} has a {have}-channel stem; the model takes {want} "
                                  "channels. Build the model with in_channels=3 or 1")

    head_loaded = False
    head_keys = [k for k in state if k.startswith(_HEAD)]
    if head_keys:
        fits = all(k in target and target[k].shape == state[k].shape for k in head_keys)
        if keep_head and fits:
            head_loaded = True
        else:
            if keep_head:
                model_head = target.get(_HEAD + "weight")
                logger.info("keeping the model's new classification head: the file's head has "
                            "%d outputs, the model's %s", state[head_keys[0]].shape[0],
                            "?" if model_head is None else model_head.shape[0])
            for k in head_keys:
                del state[k]

    unexpected = sorted(k for k in state if k not in target)
    wrong_shape = [f"{k} {tuple(state[k].shape)} != {tuple(target[k].shape)}"
                   for k in state if k in target and state[k].shape != target[k].shape]
    if wrong_shape:
        raise CheckpointError(
            f"{path} does not fit this model: wrong shape for {', '.join(wrong_shape[:5])}"
            f"{' ...' if len(wrong_shape) > 5 else ''}; is the model a DenseNet121?"
        )
    usable = {k: v.to(target[k].dtype) if v.is_floating_point() else v
              for k, v in state.items() if k in target}
    if not usable:
        raise CheckpointError(
            f"none of the {len(source)} tensors in {path} match the model (first key: "
            f"{next(iter(source))!r}); load_pretrained expects DenseNet-121 weights in the "
            "torchvision, CheXNet or MONAI layout and a MONAI DenseNet121 model"
        )
    missing = sorted(k for k in target if k not in usable and not k.endswith("num_batches_tracked")
                     and not (k.startswith(_HEAD) and not head_loaded))
    model.load_state_dict(usable, strict=False)
    if missing:
        logger.warning("%d model tensors were not in %s and keep their initial values, e.g. %s",
                       len(missing), path, ", ".join(missing[:5]))
    if unexpected:
        logger.warning("%d tensors in %s were ignored (no place in the model), e.g. %s",
                       len(unexpected), path, ", ".join(unexpected[:5]))
    logger.info("loaded %d tensors from %s (%s layout)%s%s", len(usable), path, source_format,
                ", stem folded to grey" if folded else "",
                ", head loaded" if head_loaded else ", new head")
    return PretrainedReport(source_format, len(usable), tuple(missing), tuple(unexpected),
                            head_loaded, folded)


def freeze_backbone(model: nn.Module, name: str) -> int:
    """Freeze every parameter except the classification head; return the trainable count.

    BatchNorm running statistics still update in ``train()`` mode; put the backbone in
    ``eval()`` too if they must stay fixed.

    Args:
        model: a model from :func:`~radiolens.models.build_model`.
        name: its architecture name (decides which layer is the head).

    Returns:
        The number of trainable parameters (elements) left, i.e. the head's.

    Raises:
        ConfigError: if ``name`` is unknown or the model has no such head layer.
    """
    head = head_layer(check_model_name(name)) + "."
    trainable = 0
    found = False
    for param_name, param in model.named_parameters():
        is_head = param_name.startswith(head)
        param.requires_grad_(is_head)
        if is_head:
            found = True
            trainable += param.numel()
    if not found:
        raise ConfigError(f"the model has no {head[:-1]!r} layer; is it really a {name!r} from "
                          "radiolens.models.build_model?")
    logger.info("froze the %s backbone; %d trainable parameters in the head", name, trainable)
    return trainable


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert_chexnet(path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                    half: bool = False) -> ModelInfo:
    """Turn a CheXNet checkpoint into a radiolens run directory.

    The model keeps CheXNet's 3 input channels, ImageNet normalisation and 224 px input,
    and its 14 outputs in :data:`radiolens.findings.CHEXNET_ORDER`. With no validation data
    at hand every threshold is 0.5: choose real operating points before any use.

    Args:
        path: the CheXNet checkpoint (``model.pth.tar``), or a torchvision-layout state dict
            with a 14-output classifier.
        out_dir: the run directory to write.
        half: store fp16 weights.

    Returns:
        The :class:`ModelInfo` written as ``model.json``.

    Raises:
        CheckpointError: if the file is not a complete 14-output DenseNet-121.
    """
    file = Path(path).expanduser()
    labels = list(CHEXNET_ORDER)
    model = build_model("densenet121", n_outputs=len(labels), in_channels=3)
    report = load_pretrained(model, file, fold_to_grey=False, keep_head=True)
    if not report.head_loaded:
        raise CheckpointError(f"{file} has no 14-output classifier; it is not a CheXNet "
                              "checkpoint. Use load_pretrained for backbone-only weights")
    if report.missing:
        raise CheckpointError(
            f"{file} lacks {len(report.missing)} DenseNet-121 tensors (e.g. "
            f"{', '.join(report.missing[:5])}); the checkpoint is incomplete"
        )
    info = ModelInfo(
        architecture="densenet121",
        architecture_args={"in_channels": 3, "dropout": 0.0},
        task="multilabel",
        labels=labels,
        preprocessing=Preprocessing(image_size=224, channels=3, mean=list(IMAGENET_MEAN),
                                    std=list(IMAGENET_STD), resize="squash"),
        thresholds=dict.fromkeys(labels, 0.5),
        threshold_method="default 0.5 (no validation data)",
        training={
            "source": "CheXNet checkpoint (ChestX-ray14)",
            "source_file": file.name,
            "source_sha256": _sha256(file),
            "source_format": report.source_format,
        },
        validation={},
        notes=("Converted from a CheXNet checkpoint. CheXNet resized to 256 px and used "
               "ten 224 px crops at test time; radiolens squashes to 224 px. Thresholds are "
               "0.5 for every finding: not validated."),
    )
    save_run(out_dir, model, info, half=half)
    return info
