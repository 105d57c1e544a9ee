"""From a :class:`~radiolens.train.config.TrainConfig` to train and validation datalists."""

from __future__ import annotations

import logging

import numpy as np

from radiolens.data.datalist import Datalist
from radiolens.errors import ConfigError, DatasetError
from radiolens.train.config import TrainConfig

__all__ = ["load_datalist", "load_training_data"]

logger = logging.getLogger(__name__)

#: Fewest validation images ``train`` accepts (fewer give a meaningless AUROC and CI).
MIN_VALIDATION_IMAGES = 10


def load_datalist(config: TrainConfig) -> Datalist:
    """Read the data set the configuration names, in its layout (``data_format``)."""
    from radiolens.data import (
        read_chexpert,
        read_class_folders,
        read_label_table,
        read_nih,
        read_report_labels,
    )

    fmt = config.data_format
    if fmt == "table":
        return read_label_table(config.data, config.labels, images_root=config.images_root,
                                uncertain=config.uncertain, where=config.where,
                                on_missing=_on_missing(config),
                                labels_from=_labels_origin(config))
    if fmt == "folders":
        return read_class_folders(config.data)
    if fmt == "nih":
        if config.images_root is None:
            raise ConfigError("--data-format nih needs --images-root (the images folder)")
        return read_nih(config.data, config.images_root, on_missing=_on_missing(config))
    if fmt == "chexpert":
        if config.images_root is None:
            raise ConfigError("--data-format chexpert needs --images-root (the folder that "
                              "holds CheXpert-v1.0-small/)")
        return read_chexpert(config.data, config.images_root, uncertain=config.uncertain,
                             on_missing=_on_missing(config))
    if fmt == "report-labels":
        if config.report_labels is None:
            raise ConfigError("--data-format report-labels needs --report-labels "
                              "(the CSV written by `radiolens label`)")
        return read_report_labels(config.report_labels, config.data,
                                  images_root=config.images_root, labels=config.labels,
                                  on_missing=_on_missing(config))
    raise ConfigError(f"unknown data format {fmt!r}")  # pragma: no cover - pydantic checks


def _on_missing(config: TrainConfig) -> str:
    return "drop" if config.skip_missing else "raise"


def _labels_origin(config: TrainConfig) -> str:
    """Say whether the label names were given or are the default, for error messages."""
    if "labels" in config.model_fields_set:
        return f"--labels {config.labels}"
    return (f"the default --labels {config.labels} (name your label columns with "
            "--labels COL,COL)")


def _limit(dl: Datalist, n: int, seed: int) -> Datalist:
    if len(dl) <= n:
        return dl
    rng = np.random.default_rng(seed)
    keep = sorted(rng.choice(len(dl), size=n, replace=False).tolist())
    return Datalist([dl.items[i] for i in keep], list(dl.labels), dl.source)


def load_training_data(config: TrainConfig) -> tuple[Datalist, Datalist]:
    """Train and validation datalists, split by patient with no leak; ``test`` rows dropped."""
    from radiolens.data import check_no_leak, split_by_patient

    dl = load_datalist(config)
    test_rows = [it for it in dl.items if it.get("split") == "test"]
    if test_rows:
        logger.info("left out %d images of the test split (evaluate them with `radiolens "
                    "evaluate --split test`)", len(test_rows))
        dl = Datalist([it for it in dl.items if it.get("split") != "test"], list(dl.labels),
                      dl.source)
    if len(dl) == 0:
        raise DatasetError("no training images left; check --data, --labels and --where")
    train_dl, val_dl = split_by_patient(dl, config.val_fraction, config.seed)
    check_no_leak(train_dl, val_dl)
    if config.limit is not None:
        train_dl = _limit(train_dl, config.limit, config.seed)
    if config.limit_val is not None:
        val_dl = _limit(val_dl, config.limit_val, config.seed)
    if len(val_dl) < MIN_VALIDATION_IMAGES:
        raise DatasetError(f"the validation split has {len(val_dl)} images; at least "
                           f"{MIN_VALIDATION_IMAGES} are needed for a validation AUROC that "
                           "means anything (add validation patients, raise --limit-val, "
                           "or raise --val-fraction when the table has no split column)")
    return train_dl, val_dl
