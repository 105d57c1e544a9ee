"""Patient-level splits that are stable across runs and machines, and leak checks.

A patient's images always land on one side: the side is chosen by a SHA-256 hash of
``(seed, patient_id)``, never by Python's ``hash()`` (which changes between processes)
and never by image.

Example:
    >>> train, val = split_by_patient(dl, val_fraction=0.1, seed=0)  # doctest: +SKIP
    >>> check_no_leak(train, val)                                    # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from radiolens.data.datalist import Datalist
from radiolens.errors import ConfigError, SplitLeakError

__all__ = ["check_no_leak", "patient_fraction", "split_by_patient"]

logger = logging.getLogger(__name__)

_SHOW_LEAKS = 5


def patient_fraction(patient_id: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``(seed, patient_id)``, the same on every machine.

    Example:
        >>> patient_fraction("P1", 0) == patient_fraction("P1", 0)
        True
    """
    digest = hashlib.sha256(f"{int(seed)}\x00{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _name(dl: Datalist, index: int) -> str:
    splits = {item["split"] for item in dl.items}
    if len(splits) == 1 and (only := next(iter(splits))):
        return str(only)
    return f"datalist #{index + 1}"


def check_no_leak(*datalists: Datalist, names: Sequence[str] | None = None) -> None:
    """Raise when any patient has images in more than one of ``datalists``.

    Args:
        *datalists: the sides of a split (train, val, test...).
        names: a name per datalist for the message (default: the split the items carry).

    Raises:
        SplitLeakError: naming up to 5 of the patients found on two sides and the count.
    """
    labels = list(names) if names is not None else [
        _name(dl, i) for i, dl in enumerate(datalists)]
    sides: dict[str, set[int]] = defaultdict(set)
    for i, dl in enumerate(datalists):
        for item in dl.items:
            sides[item["patient_id"]].add(i)
    leaked = sorted(p for p, s in sides.items() if len(s) > 1)
    if not leaked:
        return
    examples = ", ".join(
        f"{p!r} ({' & '.join(labels[i] for i in sorted(sides[p]))})" for p in leaked[:_SHOW_LEAKS])
    more = f" and {len(leaked) - _SHOW_LEAKS} more" if len(leaked) > _SHOW_LEAKS else ""
    raise SplitLeakError(
        f"{len(leaked)} patients have images on more than one side of the split "
        f"({', '.join(labels)}): {examples}{more}; a patient's images must stay together: "
        "fix the table's split column, or split with split_by_patient(use_existing=False)")


def split_by_patient(dl: Datalist, val_fraction: float, seed: int, use_existing: bool = True
                     ) -> tuple[Datalist, Datalist]:
    """Split a datalist into training and validation sets by patient.

    With ``use_existing`` and items whose ``"split"`` includes ``"val"``, the table's own
    split is used (and checked for leaks); images without a split are then placed by
    hash. Without a ``"val"`` split, the validation patients are drawn by hash from the
    ``"train"`` (and unsplit) images. Images with split ``"test"`` are left out of both,
    and checked for leaks against both.

    Args:
        dl: the datalist.
        val_fraction: share of patients for validation, in (0, 1) (ignored when the
            table's own train/val split is used).
        seed: chooses which patients go to validation; the same seed always gives the
            same split, on any machine.
        use_existing: use the items' ``"split"`` values when they include ``"val"``.

    Returns:
        ``(train, val)``.

    Raises:
        ConfigError: ``val_fraction`` is not in (0, 1).
        SplitLeakError: the table's own split puts a patient on two sides.
    """
    if not 0.0 < float(val_fraction) < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), got "
                          f"{val_fraction!r}; 0.1 to 0.2 is usual")
    splits = {item["split"] for item in dl.items}
    existing = use_existing and "val" in splits
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    n_hashed = 0
    for item in dl.items:
        side = item["split"]
        if side == "test":
            test.append(item)
            continue
        if existing and side in ("train", "val"):
            (val if side == "val" else train).append(item)
            continue
        n_hashed += 1
        if patient_fraction(item["patient_id"], seed) < val_fraction:
            val.append(item)
        else:
            train.append(item)
    other = splits - {"train", "val", "test", ""}
    if other:
        logger.warning("%s: unknown split values %s were split by patient hash",
                       dl.source, sorted(other))
    if test:
        logger.info("%s: %d test images left out of train/val; use dl.subset('test') to "
                    "evaluate on them", dl.source, len(test))
    if existing:
        logger.info("%s: using the table's own train/val split%s", dl.source,
                    f" ({n_hashed} unsplit images placed by patient hash)" if n_hashed else "")
    train_dl = Datalist(items=train, labels=list(dl.labels), source=dl.source)
    val_dl = Datalist(items=val, labels=list(dl.labels), source=dl.source)
    test_dl = Datalist(items=test, labels=list(dl.labels), source=dl.source)
    check_no_leak(train_dl, val_dl, test_dl, names=["train", "val", "test"])
    if not val:
        logger.warning("%s: the validation set is empty (%d patients); use more data or a "
                       "larger val_fraction", dl.source, len(dl.patients))
    if not train:
        logger.warning("%s: the training set is empty", dl.source)
    return train_dl, val_dl
