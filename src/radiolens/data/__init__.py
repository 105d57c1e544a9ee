"""Label tables and data set layouts -> datalists, and patient-level splits.

This package imports numpy (and the imaging readers) but not torch; the torch datasets
live in :mod:`radiolens.data.dataset`.

Example:
    >>> from radiolens.data import read_label_table, split_by_patient
    >>> dl = read_label_table("labels.csv", "pneumonia")              # doctest: +SKIP
    >>> train, val = split_by_patient(dl, val_fraction=0.1, seed=0)   # doctest: +SKIP
"""

from __future__ import annotations

from radiolens.data.datalist import ITEM_KEYS, Datalist, make_item
from radiolens.data.readers import (
    CHEXPERT_OBSERVATIONS,
    kermany_patient_id,
    read_chexpert,
    read_class_folders,
    read_nih,
    read_report_labels,
)
from radiolens.data.splits import check_no_leak, patient_fraction, split_by_patient
from radiolens.data.synthetic import make_synthetic_dataset
from radiolens.data.tables import (
    DERIVED_LABELS,
    LABEL_PRESETS,
    UNCERTAIN_POLICIES,
    read_label_table,
    resolve_labels,
)

# The lead adds here: the names of radiolens.data.preprocess (no torch), and the
# torch dataset names of radiolens.data.dataset (imported lazily so this package
# stays importable without torch).

__all__ = [
    "CHEXPERT_OBSERVATIONS",
    "DERIVED_LABELS",
    "ITEM_KEYS",
    "LABEL_PRESETS",
    "UNCERTAIN_POLICIES",
    "Datalist",
    "check_no_leak",
    "kermany_patient_id",
    "make_item",
    "make_synthetic_dataset",
    "patient_fraction",
    "read_chexpert",
    "read_class_folders",
    "read_label_table",
    "read_nih",
    "read_report_labels",
    "resolve_labels",
    "split_by_patient",
]
