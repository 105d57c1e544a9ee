"""Which torch device to run on (shared by training, inference and segmentation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radiolens.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is checked.

    Raises:
        ConfigError: an unknown device, or CUDA asked for without a GPU.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; "
                          "use --device cpu (or auto)")
    return device
