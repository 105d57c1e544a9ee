"""A radiograph with its lung mask drawn on it: tinted fill and a bright border."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["overlay_mask", "save_png", "unique_stems"]


def overlay_mask(pixels: npt.ArrayLike, mask: npt.ArrayLike, alpha: float = 0.25,
                 colour: tuple[float, float, float] = (0.1, 0.9, 0.3)) -> npt.NDArray[np.uint8]:
    """``(H, W, 3)`` uint8: the greyscale image, the lungs tinted, their border solid."""
    grey = np.clip(np.asarray(pixels, dtype=np.float32), 0, 1)
    m = np.asarray(mask).astype(bool)
    if m.shape != grey.shape:
        raise ValueError(f"mask {m.shape} and image {grey.shape} differ in shape")
    width = max(1, round(min(m.shape) / 256))
    border = m & ~ndimage.binary_erosion(m, iterations=width)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    c = np.asarray(colour, dtype=np.float32)
    rgb[m] = (1 - alpha) * rgb[m] + alpha * c
    rgb[border] = c
    out: npt.NDArray[np.uint8] = (rgb * 255).round().astype(np.uint8)
    return out


def save_png(path: str, array: npt.ArrayLike) -> None:
    """Write a uint8 greyscale or RGB array as PNG, atomically."""
    import io

    from PIL import Image

    from radiolens._fs import write_atomic

    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    write_atomic(path, buf.getvalue())


def unique_stems(paths: list[str]) -> list[str]:
    """File stems, made unique with ``-2``, ``-3``... when two inputs share a name."""
    from pathlib import Path

    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = Path(p).name
        for suffix in (".gz", ".dcm", ".dicom", ".png", ".jpg", ".jpeg"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
        stem = stem or "image"
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        out.append(stem if n == 1 else f"{stem}-{n}")
    return out
