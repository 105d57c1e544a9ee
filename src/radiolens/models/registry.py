"""Model registry: build a classifier by name over MONAI networks.

Every model takes ``(N, in_channels, H, W)`` images and returns logits ``(N, n_outputs)``;
apply a sigmoid for probabilities. The names are what run configs and ``model.json``
store in ``architecture``.

Example:
    >>> import torch
    >>> from radiolens.models import build_model
    >>> model = build_model("small-vgg", n_outputs=2).eval()
    >>> model(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from radiolens._suggest import choices_hint, did_you_mean
from radiolens.errors import ConfigError
from radiolens.models.info import ARCHITECTURES

__all__ = [
    "MODEL_NAMES",
    "DropoutLinear",
    "SmallVGG",
    "build_model",
    "check_model_name",
    "gradcam_target_layer",
    "head_layer",
]

logger = logging.getLogger(__name__)


class DropoutLinear(nn.Linear):
    """A linear layer with dropout on its input; same parameter names as ``nn.Linear``.

    Used as the classification head so that the ``dropout`` option of
    :func:`build_model` never changes the state dict keys (a run saved with dropout 0.3
    loads into a model built with dropout 0).

    Example:
        >>> head = DropoutLinear(1024, 14, p=0.2)
        >>> sorted(name for name, _ in head.named_parameters())
        ['bias', 'weight']
    """

    def __init__(self, in_features: int, out_features: int, p: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p > 0.0:
            x = F.dropout(x, self.p, self.training)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class SmallVGG(nn.Module):
    """A small VGG-style CNN for grey chest X-rays, trainable from scratch on a CPU.

    Four blocks of 3x3 conv + BatchNorm + ReLU + 2x2 max-pool (32, 64, 128 and 512
    filters by default), global average pooling, dropout and a linear head. Global pooling
    makes it accept any image size from 64 px up (300x300 in the seed article).

    Args:
        n_outputs: number of logits.
        in_channels: image channels (1 for grey).
        dropout: dropout probability before the linear head.
        channels: filters of each conv block.

    Example:
        >>> import torch
        >>> net = SmallVGG(n_outputs=3).eval()
        >>> net(torch.zeros(2, 1, 300, 300)).shape
        torch.Size([2, 3])
    """

    def __init__(self, n_outputs: int, in_channels: int = 1, dropout: float = 0.0,
                 channels: Sequence[int] = (32, 64, 128, 512)) -> None:
        super().__init__()
        if not channels:
            raise ConfigError("small-vgg needs at least one conv block in 'channels'")
        blocks: list[tuple[str, nn.Module]] = []
        prev = in_channels
        for i, width in enumerate(channels, start=1):
            block = nn.Sequential()
            block.add_module("conv", nn.Conv2d(prev, width, kernel_size=3, padding=1, bias=False))
            block.add_module("norm", nn.BatchNorm2d(width))
            block.add_module("relu", nn.ReLU(inplace=True))
            block.add_module("pool", nn.MaxPool2d(kernel_size=2, stride=2))
            blocks.append((f"block{i}", block))
            prev = width
        self.features = nn.Sequential()
        for block_name, module in blocks:
            self.features.add_module(block_name, module)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = DropoutLinear(prev, n_outputs, p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.head(torch.flatten(x, 1))


def _replace_head(parent: nn.Module, attr: str, dropout: float) -> None:
    """Swap the ``nn.Linear`` at ``parent.attr`` for a :class:`DropoutLinear` of the same shape."""
    old = getattr(parent, attr)
    if not isinstance(old, nn.Linear):
        raise RuntimeError(f"expected a Linear head at {attr!r}, found {type(old).__name__}")
    setattr(parent, attr, DropoutLinear(old.in_features, old.out_features, p=dropout,
                                        bias=old.bias is not None))


def _densenet121(n_outputs: int, in_channels: int, dropout: float, **kwargs: Any) -> nn.Module:
    from monai.networks.nets import DenseNet121

    model = DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=n_outputs,
                        **kwargs)
    _replace_head(model.class_layers, "out", dropout)
    return model


def _resnet(depth: int) -> Callable[..., nn.Module]:
    def build(n_outputs: int, in_channels: int, dropout: float, **kwargs: Any) -> nn.Module:
        from monai.networks.nets import resnet18, resnet50

        factory = resnet18 if depth == 18 else resnet50
        model = factory(spatial_dims=2, n_input_channels=in_channels, num_classes=n_outputs,
                        **kwargs)
        _replace_head(model, "fc", dropout)
        return model

    return build


def _efficientnet_b0(n_outputs: int, in_channels: int, dropout: float,
                     **kwargs: Any) -> nn.Module:
    from monai.networks.nets import EfficientNetBN

    model = EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2,
                           in_channels=in_channels, num_classes=n_outputs, **kwargs)
    # MONAI applies its own Dropout(0.2) before ``_fc``; the ``dropout`` option replaces it
    # so that the option means the same for every architecture.
    model._dropout = nn.Dropout(dropout)
    return model


def _small_vgg(n_outputs: int, in_channels: int, dropout: float, **kwargs: Any) -> nn.Module:
    return SmallVGG(n_outputs=n_outputs, in_channels=in_channels, dropout=dropout, **kwargs)


# name -> (builder, Grad-CAM target layer, classification head)
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], str, str]] = {
    "densenet121": (_densenet121, "class_layers.relu", "class_layers.out"),
    "resnet18": (_resnet(18), "layer4", "fc"),
    "resnet50": (_resnet(50), "layer4", "fc"),
    "efficientnet-b0": (_efficientnet_b0, "_bn1", "_fc"),
    "small-vgg": (_small_vgg, "features.block4.relu", "head"),
}

#: The architectures :func:`build_model` knows, as stored in ``model.json``.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
assert MODEL_NAMES == ARCHITECTURES, "models.info.ARCHITECTURES must list the registry"


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a known architecture, else raise :class:`ConfigError`."""
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown model {name!r}{did_you_mean(name, MODEL_NAMES)}; {choices_hint(MODEL_NAMES)}"
        )
    return name


def build_model(name: str, n_outputs: int, in_channels: int = 1, dropout: float = 0.0,
                **kwargs: Any) -> nn.Module:
    """Build an untrained classifier that returns logits ``(N, n_outputs)``.

    Args:
        name: one of :data:`MODEL_NAMES`.
        n_outputs: number of logits (one per label).
        in_channels: image channels: 1 for grey, 3 for ImageNet-style RGB input.
        dropout: dropout probability on the pooled features, just before the linear head
            (the same meaning for every architecture; it never changes the weights' names).
        **kwargs: extra arguments for the underlying constructor, e.g. ``dropout_prob``
            (dropout inside DenseNet's dense layers) or ``channels`` for ``small-vgg``.

    Raises:
        ConfigError: for an unknown name, a bad argument, or kwargs the network rejects.
    """
    builder = _REGISTRY[check_model_name(name)][0]
    if n_outputs < 1:
        raise ConfigError(f"n_outputs must be at least 1, got {n_outputs}")
    if in_channels < 1:
        raise ConfigError(f"in_channels must be at least 1, got {in_channels}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    try:
        model = builder(n_outputs, in_channels, float(dropout), **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"model {name!r} rejected its arguments {kwargs}: {str(exc).strip()}; fix or "
            "remove them (see the MONAI documentation of this network)"
        ) from exc
    logger.debug("built %s with %d outputs, %d input channels", name, n_outputs, in_channels)
    return model


def gradcam_target_layer(name: str) -> str:
    """Return the layer name to pass to MONAI ``GradCAM(target_layers=...)`` for ``name``.

    Each is the last spatial feature map after its activation (or, for EfficientNet, the
    last BatchNorm, because its activation module is shared with the stem).

    Example:
        >>> gradcam_target_layer("densenet121")
        'class_layers.relu'
    """
    return _REGISTRY[check_model_name(name)][1]


def head_layer(name: str) -> str:
    """Return the name of the final linear layer (the classification head) of ``name``."""
    return _REGISTRY[check_model_name(name)][2]
