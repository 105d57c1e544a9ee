"""The segmentation networks (MONAI): a residual U-Net and an Attention U-Net."""

from __future__ import annotations

from typing import Any

from torch import nn

from radiolens.errors import ConfigError
from radiolens.segment.info import SEG_ARCHITECTURES

__all__ = ["build_seg_net", "default_args"]

_DEFAULTS: dict[str, dict[str, Any]] = {
    "unet": {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2],
             "num_res_units": 2, "dropout": 0.0},
    "attention-unet": {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2],
                       "dropout": 0.0},
}


def default_args(name: str) -> dict[str, Any]:
    """The architecture arguments ``train-seg`` uses for ``name``."""
    if name not in _DEFAULTS:
        raise ConfigError(f"unknown segmentation model {name!r}; choose from "
                          f"{', '.join(SEG_ARCHITECTURES)}")
    return {k: list(v) if isinstance(v, list) else v for k, v in _DEFAULTS[name].items()}


def build_seg_net(name: str, **kwargs: Any) -> nn.Module:
    """A 2-D, one-channel-in, one-logit-out MONAI network.

    Example:
        >>> net = build_seg_net("unet")             # doctest: +SKIP
    """
    from monai.networks.nets import AttentionUnet, UNet

    args = {**default_args(name), **kwargs}
    if name == "unet":
        return UNet(spatial_dims=2, in_channels=1, out_channels=1, **args)
    return AttentionUnet(spatial_dims=2, in_channels=1, out_channels=1, **args)
