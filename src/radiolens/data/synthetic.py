"""A small synthetic chest X-ray data set whose labels a tiny CNN learns in an epoch or two.

Each image is a noisy chest-like picture (body, two dark lung fields, a bright
mediastinum, faint ribs). A positive label adds a bright blurred blob ("opacity") in a
lung zone of its own, so several labels are distinguishable. Used by the CI smoke test
of training and by the examples; never for anything clinical.

Example:
    >>> from radiolens.data import make_synthetic_dataset, read_label_table
    >>> csv = make_synthetic_dataset("/tmp/syn", n=48)          # doctest: +SKIP
    >>> dl = read_label_table(csv, "pneumonia")                   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from radiolens.data.splits import patient_fraction
from radiolens.errors import ConfigError, MissingDependencyError

__all__ = ["make_synthetic_dataset", "synthetic_image"]

logger = logging.getLogger(__name__)

#: Lung zones (x, y as fractions of the size) where each label's opacity appears, in order.
_ZONES: tuple[tuple[float, float], ...] = (
    (0.33, 0.58), (0.67, 0.35), (0.67, 0.60), (0.33, 0.35), (0.30, 0.47), (0.70, 0.47),
)
_VAL_SHARE = 0.25


def _ellipse(xx: npt.NDArray[np.float64], yy: npt.NDArray[np.float64], cx: float, cy: float,
             rx: float, ry: float, softness: float) -> npt.NDArray[np.float64]:
    """1 inside the ellipse, 0 outside, with a soft edge."""
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    return np.asarray(1.0 / (1.0 + np.exp((d - 1.0) / softness)), dtype=np.float64)


def synthetic_image(positives: Sequence[bool], size: int, rng: np.random.Generator,
                    lungs: list[npt.NDArray[np.bool_]] | None = None) -> npt.NDArray[np.uint8]:
    """One synthetic radiograph, ``uint8`` of shape ``(size, size)``.

    Args:
        positives: for each label, whether its opacity is drawn.
        size: width and height in pixels.
        rng: the random generator (all randomness comes from it).
        lungs: when given, the image's lung mask is appended to it.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / max(size - 1, 1)
    shift_x, shift_y = rng.normal(0.0, 0.02, 2)
    xx, yy = xx - shift_x, yy - shift_y
    if lungs is not None:
        lungs.append(np.logical_or(*[_ellipse(xx, yy, cx, 0.47, 0.15, 0.27, 0.06) > 0.5
                                     for cx in (0.33, 0.67)]))
    img = 0.12 + 0.10 * yy
    img += 0.40 * _ellipse(xx, yy, 0.5, 0.52, 0.46, 0.50, 0.05)          # body
    for cx in (0.33, 0.67):                                               # lung fields
        img -= 0.30 * _ellipse(xx, yy, cx, 0.47, 0.15, 0.27, 0.06)
    img += 0.22 * _ellipse(xx, yy, 0.5, 0.55, 0.06, 0.40, 0.08)          # mediastinum
    ribs = 0.5 + 0.5 * np.sin(2 * math.pi * (yy * 7.0 + 0.15 * np.abs(xx - 0.5)))
    img += 0.04 * ribs * _ellipse(xx, yy, 0.5, 0.47, 0.36, 0.30, 0.05)
    for k, positive in enumerate(positives):
        if not positive:
            continue
        zx, zy = _ZONES[k % len(_ZONES)]
        cx, cy = zx + rng.normal(0.0, 0.03), zy + rng.normal(0.0, 0.03)
        sigma = 0.09 * rng.uniform(0.9, 1.2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        img += rng.uniform(0.45, 0.55) * blob
    img *= rng.uniform(0.95, 1.05)
    img += rng.normal(0.0, 0.035, img.shape)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _val_patients(patient_ids: list[str], first_label: list[int], seed: int) -> set[str]:
    """About a quarter of the patients, by patient hash, with both classes represented."""
    if len(patient_ids) < 2:
        return set()
    k = max(1, round(_VAL_SHARE * len(patient_ids)))
    by_class: dict[int, list[str]] = {0: [], 1: []}
    for pid, value in zip(patient_ids, first_label, strict=True):
        by_class[value].append(pid)
    for members in by_class.values():
        members.sort(key=lambda p: patient_fraction(p, seed))
    chosen = by_class[1][: (k + 1) // 2] + by_class[0][: k // 2]
    return set(chosen)


def make_synthetic_dataset(
    out_dir: str | os.PathLike[str],
    n: int = 48,
    image_size: int = 64,
    seed: int = 0,
    labels: Sequence[str] = ("pneumonia",),
    n_patients: int | None = None,
    masks: bool = False,
) -> Path:
    """Write a small synthetic data set: 8-bit PNGs and a ``labels.csv``.

    The label table has columns ``image`` (``images/syn_00000.png``), ``patient_id``, one
    0/1 column per label, ``split`` (``train`` / ``val`` by patient, about 25% val),
    ``sex``, ``age`` and ``view``. The first label is balanced (each patient with two
    images has one positive and one negative); further labels are positive in about 40%
    of images, each in its own lung zone. The same arguments always give the same files.

    Args:
        out_dir: the folder to write (created; existing files of the same names replaced).
        n: number of images.
        image_size: width and height in pixels.
        seed: the random seed.
        labels: label column names.
        n_patients: number of patients (default ``n // 2``: two images each).
        masks: also write each image's lung mask (``masks/syn_00000_lung.png``, 0/255)
            and a ``mask`` column, for ``radiolens train-seg``.

    Returns:
        The path of ``labels.csv``.

    Raises:
        ConfigError: the sizes or labels are invalid.
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependencyError("pillow", "dicom") from None
    names = [str(label).strip() for label in labels]
    reserved = {"image", "patient_id", "split", "sex", "age", "view"}
    if not names or any(not name for name in names) or len(set(names)) != len(names):
        raise ConfigError(f"labels must be distinct non-empty names, got {list(labels)!r}")
    if reserved & set(names):
        raise ConfigError(f"label names {sorted(reserved & set(names))} clash with the table's "
                          "own columns; rename them")
    if n < 2:
        raise ConfigError(f"n must be at least 2 (one image per class), got {n}")
    if image_size < 16:
        raise ConfigError(f"image_size must be at least 16 pixels, got {image_size}")
    patients = n_patients if n_patients is not None else max(1, n // 2)
    if not 1 <= patients <= n:
        raise ConfigError(f"n_patients must be between 1 and n ({n}), got {n_patients}")

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    patient_ids = [f"SYN{p:04d}" for p in range(patients)]
    # Image i belongs to patient i % patients; the first label alternates within a patient.
    first = [(i // patients + i % patients) % 2 for i in range(n)]
    first_of_patient = [first[p] for p in range(patients)]
    val = _val_patients(patient_ids, first_of_patient, seed)
    sexes = ["F" if rng.random() < 0.5 else "M" for _ in range(patients)]
    ages = [str(int(rng.integers(18, 90))) for _ in range(patients)]
    rows = []
    for i in range(n):
        p = i % patients
        values = [first[i]] + [int(rng.random() < 0.4) for _ in names[1:]]
        lung: list[npt.NDArray[np.bool_]] | None = [] if masks else None
        pixels = synthetic_image([bool(v) for v in values], image_size, rng, lung)
        rel = f"images/syn_{i:05d}.png"
        Image.fromarray(pixels).save(out / rel)
        extra = {}
        if lung:
            (out / "masks").mkdir(exist_ok=True)
            extra["mask"] = f"masks/syn_{i:05d}_lung.png"
            Image.fromarray(lung[0].astype(np.uint8) * 255).save(out / extra["mask"])
        rows.append({
            "image": rel,
            **extra,
            "patient_id": patient_ids[p],
            **dict(zip(names, map(str, values), strict=True)),
            "split": "val" if patient_ids[p] in val else "train",
            "sex": sexes[p],
            "age": ages[p],
            "view": "PA" if rng.random() < 0.7 else "AP",
        })
    csv_path = out / "labels.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", *(["mask"] if masks else []),
                                                "patient_id", *names, "split", "sex",
                                                "age", "view"])
        writer.writeheader()
        writer.writerows(rows)
    logger.info("wrote %d synthetic images (%d patients, labels %s) to %s", n, patients,
                names, out)
    return csv_path
