"""Score the rows of one split of a label table with a model (``evaluate``, ``thresholds``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import argparse

    from radiolens.inference import Predictor

log = logging.getLogger(__name__)


@dataclass
class ScoredSplit:
    """The readable rows of a split, their labels (NaN = missing) and probabilities."""

    split: str
    items: list[dict[str, Any]]
    y: npt.NDArray[np.float64]
    p: npt.NDArray[np.float32]
    unreadable: list[str]
    inputs: npt.NDArray[np.float32] | None = None


def score_split(predictor: Predictor, data: str, split: str | None, *,
                default_split: str, images_root: str | None = None,
                where: dict[str, str] | None = None, batch_size: int = 32,
                hint: str = "", skip_missing: bool = False,
                keep_inputs: bool = False) -> ScoredSplit:
    """Read the rows of ``split`` (``all`` for every row) and score them.

    ``split=None`` means ``default_split``, which must then exist in the table; ``hint``
    ends the error message when it does not. ``skip_missing`` drops rows whose image file
    does not exist instead of raising. ``keep_inputs`` keeps the preprocessed inputs.

    Raises:
        ConfigError: no split given and the table has no ``default_split``.
        DatasetError: the split is empty or no image could be read.
    """
    from radiolens.cli._common import progress
    from radiolens.data import read_label_table
    from radiolens.errors import ConfigError, DatasetError, ImageReadError
    from radiolens.imaging import read_image

    dl = read_label_table(data, predictor.labels, images_root=images_root, where=where,
                          on_missing="drop" if skip_missing else "raise",
                          labels_from="the model's labels (the table needs a column per "
                                      "label of the model)")
    splits = sorted({str(it.get("split", "")) for it in dl.items} - {""})
    if split is None:
        if default_split not in splits:
            raise ConfigError(f"{data} has no {default_split!r} split (splits: "
                              f"{', '.join(splits) or 'none'}); pass --split NAME or --split "
                              f"all{hint}")
        split = default_split
    items = dl.items if split == "all" else [it for it in dl.items if it.get("split") == split]
    if not items:
        raise DatasetError(f"no rows in split {split!r}; splits in the table: "
                           f"{', '.join(splits) or 'none'}")
    kept: list[dict[str, Any]] = []
    batch: list[Any] = []
    probs: list[Any] = []
    kept_inputs: list[Any] = []
    bad: list[str] = []
    for it in progress(items, "scoring", "img"):
        try:
            batch.append(predictor.preprocess(read_image(it["image"])))
        except ImageReadError as exc:
            bad.append(str(exc))
            continue
        kept.append(it)
        if len(batch) >= batch_size:
            probs.append(predictor.predict_batch(np.stack(batch)))
            kept_inputs.extend(batch if keep_inputs else [])
            batch = []
    if batch:
        probs.append(predictor.predict_batch(np.stack(batch)))
        kept_inputs.extend(batch if keep_inputs else [])
    if bad:
        log.warning("%d images could not be read and were left out:\n  %s", len(bad),
                    "\n  ".join(bad[:20]))
    if not kept:
        raise DatasetError("no image could be read")
    y = np.stack([np.asarray(it["label"], dtype=np.float64) for it in kept])
    return ScoredSplit(split, kept, y, np.concatenate(probs), bad,
                       np.stack(kept_inputs) if keep_inputs else None)


def score_from_args(args: argparse.Namespace, *, default_split: str,
                    hint: str = "") -> tuple[Predictor, ScoredSplit]:
    """Load ``--checkpoint`` and score the split that the options of
    :func:`~radiolens.cli._common.add_scoring_options` name."""
    from radiolens.inference import Predictor

    predictor = Predictor(args.checkpoint, device=args.device, batch_size=args.batch_size,
                          backend=getattr(args, "backend", "auto")).load()
    scored = score_split(predictor, args.data, args.split, default_split=default_split,
                         images_root=args.images_root,
                         where=dict(args.where) if args.where else None,
                         batch_size=args.batch_size, hint=hint,
                         skip_missing=args.skip_missing)
    return predictor, scored


def subgroup_metadata(items: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The ``sex``, ``age`` and ``view`` columns of the scored rows, for subgroup metrics."""
    return {k: [it.get(k, "") for it in items] for k in ("sex", "age", "view")}
