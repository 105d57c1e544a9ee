"""The datalist: one dict per image, as MONAI's dictionary transforms expect.

Every reader in :mod:`radiolens.data` returns a :class:`Datalist`. Each item holds:

* ``"image"``: absolute path of the image file (``str``);
* ``"label"``: ``float32`` array with one value per label name: ``1`` positive, ``0``
  negative, ``nan`` missing (blank, or uncertain under the ``"ignore"`` policy);
* ``"patient_id"``, ``"split"`` (``"train"``, ``"val"``, ``"test"`` or ``""``), ``"id"``
  (the image's identifier in its source table), ``"sex"``, ``"age"``, ``"view"``
  (``str``; ``""`` when unknown).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens._suggest import did_you_mean
from radiolens.errors import DatasetError

__all__ = ["ITEM_KEYS", "Datalist", "make_item"]

logger = logging.getLogger(__name__)

#: The keys every datalist item carries.
ITEM_KEYS: tuple[str, ...] = ("image", "label", "patient_id", "split", "id", "sex", "age",
                              "view")
_TEXT_KEYS = ("patient_id", "split", "id", "sex", "age", "view")


def make_item(image: str, label: npt.ArrayLike, *, patient_id: str, split: str = "",
              id: str = "", sex: str = "", age: str = "", view: str = "") -> dict[str, Any]:
    """Build one datalist item with every key of :data:`ITEM_KEYS`.

    Args:
        image: absolute path of the image file.
        label: label values (``1``, ``0`` or ``nan``), one per label name.
        patient_id: the patient the image belongs to (splits are made by it).
        split: ``"train"``, ``"val"``, ``"test"`` or ``""``.
        id: the image's identifier in its source table (defaults to ``image``).
        sex: patient sex (``"M"``, ``"F"``, ``"O"`` or ``""``).
        age: patient age as text, ``""`` when unknown.
        view: view position such as ``"PA"``, ``"AP"``, ``"LATERAL"``, or ``""``.

    Returns:
        The item dict.
    """
    return {
        "image": image,
        "label": np.asarray(label, dtype=np.float32),
        "patient_id": patient_id,
        "split": split,
        "id": id or image,
        "sex": sex,
        "age": age,
        "view": view,
    }


@dataclass
class Datalist:
    """Images with their label vectors and patient information.

    Attributes:
        items: one dict per image (see the module docstring for the keys).
        labels: the label names, in the order of each item's ``"label"`` vector.
        source: where the items came from (a file or folder, for messages and summaries).

    Example:
        >>> from radiolens.data import read_label_table, split_by_patient
        >>> dl = read_label_table("labels.csv", "pneumonia")        # doctest: +SKIP
        >>> dl.summary()["labels"]["pneumonia"]                     # doctest: +SKIP
        {'positive': 1800, 'negative': 1341, 'missing': 0}
        >>> train, val = split_by_patient(dl, val_fraction=0.1, seed=0)  # doctest: +SKIP
    """

    items: list[dict[str, Any]]
    labels: list[str]
    source: str = ""

    def __post_init__(self) -> None:
        self.labels = list(self.labels)
        n = len(self.labels)
        for item in self.items:
            missing = [k for k in ITEM_KEYS if k not in item]
            if missing:
                raise DatasetError(f"datalist item {item.get('image')!r} lacks the keys "
                                   f"{missing}; build items with radiolens.data.make_item()",
                                   self.source or None)
            if np.shape(item["label"]) != (n,):
                raise DatasetError(
                    f"item {item['image']!r} has {np.size(item['label'])} label values but "
                    f"the datalist has {n} labels {self.labels}", self.source or None)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]

    def _derive(self, items: list[dict[str, Any]], labels: Sequence[str] | None = None
                ) -> Datalist:
        return Datalist(items=items, labels=list(self.labels if labels is None else labels),
                        source=self.source)

    @property
    def patients(self) -> set[str]:
        """The distinct patient ids."""
        return {item["patient_id"] for item in self.items}

    @property
    def splits(self) -> dict[str, int]:
        """Images per value of the ``"split"`` key (``""`` for none), sorted by name."""
        return dict(sorted(Counter(item["split"] for item in self.items).items()))

    def label_matrix(self) -> npt.NDArray[np.float32]:
        """All label vectors stacked, shape ``(len(self), len(self.labels))``."""
        if not self.items:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.stack([item["label"] for item in self.items]).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """Counts for a quick look: images, patients, splits and, per label, the positives,
        negatives and missing values.

        Returns:
            ``{"source", "n_images", "n_patients", "splits": {split: n},
            "labels": {label: {"positive", "negative", "missing"}}}``.
        """
        matrix = self.label_matrix()
        per_label = {}
        for j, name in enumerate(self.labels):
            column = matrix[:, j]
            per_label[name] = {
                "positive": int(np.sum(column == 1.0)),
                "negative": int(np.sum(column == 0.0)),
                "missing": int(np.sum(np.isnan(column))),
            }
        return {
            "source": self.source,
            "n_images": len(self.items),
            "n_patients": len(self.patients),
            "splits": self.splits,
            "labels": per_label,
        }

    def subset(self, split_name: str | Iterable[str]) -> Datalist:
        """The items whose ``"split"`` is ``split_name`` (or one of several names).

        Raises:
            DatasetError: no item has that split (the message lists the splits there are).
        """
        wanted = {split_name} if isinstance(split_name, str) else set(split_name)
        items = [item for item in self.items if item["split"] in wanted]
        if not items and self.items:
            present = [s for s in self.splits if s]
            hint = did_you_mean(next(iter(wanted)), present) if len(wanted) == 1 else ""
            raise DatasetError(
                f"no image has split {sorted(wanted)}{hint}; splits here: "
                f"{present or 'none (use split_by_patient)'}", self.source or None)
        return self._derive(items)

    def filter(self, predicate: Callable[[dict[str, Any]], bool] | None = None,
               **equals: str | Iterable[str]) -> Datalist:
        """The items that satisfy ``predicate`` and whose keys equal the given values.

        Args:
            predicate: a function of the item returning ``True`` to keep it.
            **equals: item key to a value, or to several accepted values
                (``filter(view=["PA", "AP"])``).

        Returns:
            A new datalist (the items are shared, not copied).
        """
        accepted: dict[str, set[str]] = {}
        for key, value in equals.items():
            if key not in _TEXT_KEYS:
                raise DatasetError(f"cannot filter on {key!r}{did_you_mean(key, _TEXT_KEYS)}; "
                                   f"filter on one of {list(_TEXT_KEYS)} or pass a predicate")
            accepted[key] = {value} if isinstance(value, str) else set(value)
        items = [
            item for item in self.items
            if all(item[k] in v for k, v in accepted.items())
            and (predicate is None or predicate(item))
        ]
        return self._derive(items)

    def select_labels(self, names: Sequence[str]) -> Datalist:
        """A datalist with only the label columns ``names``, in that order.

        Raises:
            DatasetError: a name is not one of :attr:`labels`.
        """
        index = []
        for name in names:
            if name not in self.labels:
                raise DatasetError(f"label {name!r} is not in this datalist"
                                   f"{did_you_mean(name, self.labels)}; labels: {self.labels}",
                                   self.source or None)
            index.append(self.labels.index(name))
        items = [{**item, "label": item["label"][index].copy()} for item in self.items]
        return self._derive(items, list(names))

    def __add__(self, other: Datalist) -> Datalist:
        """Concatenate two datalists with the same labels."""
        if list(other.labels) != self.labels:
            raise DatasetError(f"cannot concatenate datalists with labels {self.labels} and "
                               f"{list(other.labels)}; use select_labels() first")
        source = " + ".join(s for s in (self.source, other.source) if s)
        return Datalist(items=[*self.items, *other.items], labels=list(self.labels),
                        source=source)
