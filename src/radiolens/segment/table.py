"""Image/mask pairs from a label table with a ``mask`` column."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from radiolens.data.splits import patient_fraction
from radiolens.data.tables import norm_split, open_csv, require_column, resolve_image
from radiolens.errors import DatasetError

__all__ = ["MaskPair", "read_mask_table", "split_pairs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaskPair:
    """One radiograph and its reference lung mask."""

    image: Path
    mask: Path
    patient_id: str
    split: str = ""


def read_mask_table(path: str | os.PathLike[str], images_root: str | None = None,
                    where: dict[str, str] | None = None) -> list[MaskPair]:
    """Rows of ``path`` that have a mask (``image`` and ``mask`` columns; ``patient_id``
    and ``split`` are used when present). Rows without a mask are skipped and counted.

    Raises:
        DatasetError: no ``mask`` column, a listed file is missing, or no row has a mask.
    """
    table = Path(path)
    header, rows = open_csv(table)
    require_column("image", header, table)
    require_column("mask", header, table, " (lung masks: a PNG path per image, blank "
                                          "where there is none)")
    root = Path(images_root) if images_root else table.parent
    wanted = {k: {v.strip() for v in val.split(",")} for k, val in (where or {}).items()}
    for key in wanted:
        require_column(key, header, table, " (from --where)")
    pairs: list[MaskPair] = []
    no_mask = 0
    missing: list[str] = []
    for line, row in rows:
        if any((row.get(k) or "").strip() not in vals for k, vals in wanted.items()):
            continue
        image, mask = (row.get("image") or "").strip(), (row.get("mask") or "").strip()
        if not image or not mask:
            no_mask += 1
            continue
        ip, mp = resolve_image(image, root), resolve_image(mask, root)
        for p in (ip, mp):
            if not p.is_file():
                missing.append(f"{table.name}:{line}: {p.name}")
        pid = (row.get("patient_id") or "").strip() or ip.stem
        pairs.append(MaskPair(ip, mp, pid, norm_split(row.get("split"))))
    if missing:
        listing = "\n  ".join(missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise DatasetError(f"{len(missing)} image or mask files do not exist:\n  {listing}"
                           f"{more}\ncheck the paths (relative to the table's folder or "
                           "--images-root)")
    if not pairs:
        raise DatasetError("no row has both an image and a mask", str(table))
    if no_mask:
        logger.info("%d rows without a mask left out", no_mask)
    return pairs


def split_pairs(pairs: list[MaskPair], val_fraction: float = 0.1, seed: int = 0
                ) -> tuple[list[MaskPair], list[MaskPair]]:
    """Training and validation pairs by patient: the table's ``split`` column when it
    has both ``train`` and ``val``, else a stable hash of the patient id."""
    splits = {p.split for p in pairs}
    if {"train", "val"} <= splits:
        return ([p for p in pairs if p.split == "train"], [p for p in pairs if p.split == "val"])
    val = [p for p in pairs if patient_fraction(p.patient_id, seed) < val_fraction]
    train = [p for p in pairs if patient_fraction(p.patient_id, seed) >= val_fraction]
    if not val or not train:
        raise DatasetError(f"{len(pairs)} masks from {len({p.patient_id for p in pairs})} "
                           "patients are too few to split by patient; add images or a split "
                           "column")
    return train, val
