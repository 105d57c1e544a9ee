"""The findings radiolens labels and predicts, and the label value convention.

Two label schemas ship with radiolens:

* ``chestxray14``: the 14 ChestX-ray14 (NIH) findings plus ``No Finding``.
* ``chexpert``: the 14 CheXpert observations (``No Finding`` included).

Label values follow the CheXpert convention: ``1`` positive, ``0`` negative, ``-1``
uncertain, and blank (``None``) when the report does not mention the finding.

Example:
    >>> from radiolens.findings import Finding, Certainty, get_schema
    >>> Finding.EFFUSION.value
    'Effusion'
    >>> get_schema("chestxray14").columns[-1]
    'No Finding'
    >>> int(Certainty.UNCERTAIN)
    -1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from radiolens._suggest import choices_hint, did_you_mean
from radiolens.errors import ConfigError

__all__ = [
    "CHESTXRAY14_FINDINGS",
    "CHEXNET_ORDER",
    "SCHEMAS",
    "Certainty",
    "CheXpertObservation",
    "Finding",
    "LabelSchema",
    "format_label",
    "get_schema",
    "parse_label",
]


class Finding(StrEnum):
    """The 14 ChestX-ray14 findings and ``No Finding``, named exactly as in the NIH data."""

    ATELECTASIS = "Atelectasis"
    CARDIOMEGALY = "Cardiomegaly"
    CONSOLIDATION = "Consolidation"
    EDEMA = "Edema"
    EFFUSION = "Effusion"
    EMPHYSEMA = "Emphysema"
    FIBROSIS = "Fibrosis"
    HERNIA = "Hernia"
    INFILTRATION = "Infiltration"
    MASS = "Mass"
    NODULE = "Nodule"
    PLEURAL_THICKENING = "Pleural_Thickening"
    PNEUMONIA = "Pneumonia"
    PNEUMOTHORAX = "Pneumothorax"
    NO_FINDING = "No Finding"


#: The 14 findings in label-table order (alphabetical, as radiolens writes them).
CHESTXRAY14_FINDINGS: tuple[str, ...] = tuple(
    f.value for f in Finding if f is not Finding.NO_FINDING)

#: The 14 findings in the order of the NIH release and of CheXNet's 14 outputs.
CHEXNET_ORDER: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)


class CheXpertObservation(StrEnum):
    """The 14 CheXpert observations, in the column order of the CheXpert CSV files."""

    NO_FINDING = "No Finding"
    ENLARGED_CARDIOMEDIASTINUM = "Enlarged Cardiomediastinum"
    CARDIOMEGALY = "Cardiomegaly"
    LUNG_OPACITY = "Lung Opacity"
    LUNG_LESION = "Lung Lesion"
    EDEMA = "Edema"
    CONSOLIDATION = "Consolidation"
    PNEUMONIA = "Pneumonia"
    ATELECTASIS = "Atelectasis"
    PNEUMOTHORAX = "Pneumothorax"
    PLEURAL_EFFUSION = "Pleural Effusion"
    PLEURAL_OTHER = "Pleural Other"
    FRACTURE = "Fracture"
    SUPPORT_DEVICES = "Support Devices"


class Certainty(IntEnum):
    """What a report says about a finding (the CheXpert label values)."""

    POSITIVE = 1
    NEGATIVE = 0
    UNCERTAIN = -1


@dataclass(frozen=True)
class LabelSchema:
    """A named set of label columns.

    Attributes:
        name: schema name used on the command line (``--schema``).
        columns: label columns in output order, ``no_finding`` included.
        no_finding: the column that is positive only when nothing else is positive or
            uncertain, or ``None`` when the schema has no such column.
        no_finding_ignores: columns that do not block ``no_finding`` (CheXpert's
            ``Support Devices``).
        vocabulary: name of the packaged vocabulary file for this schema.
    """

    name: str
    columns: tuple[str, ...]
    no_finding: str | None = "No Finding"
    no_finding_ignores: frozenset[str] = field(default_factory=frozenset)
    vocabulary: str = ""

    @property
    def findings(self) -> tuple[str, ...]:
        """The columns other than ``no_finding``."""
        return tuple(c for c in self.columns if c != self.no_finding)

    def with_findings(self, extra: Iterable[str]) -> LabelSchema:
        """Return a copy with ``extra`` findings added before ``no_finding`` (user rules)."""
        new = [f for f in extra if f not in self.columns]
        if not new:
            return self
        cols = list(self.columns)
        at = cols.index(self.no_finding) if self.no_finding in cols else len(cols)
        if at == 0:  # CheXpert puts No Finding first: append at the end instead
            at = len(cols)
        cols[at:at] = new
        return LabelSchema(self.name, tuple(cols), self.no_finding, self.no_finding_ignores,
                           self.vocabulary)


SCHEMAS: Mapping[str, LabelSchema] = {
    "chestxray14": LabelSchema(
        name="chestxray14",
        columns=(*CHESTXRAY14_FINDINGS, Finding.NO_FINDING.value),
        vocabulary="chestxray14.yaml",
    ),
    "chexpert": LabelSchema(
        name="chexpert",
        columns=tuple(o.value for o in CheXpertObservation),
        no_finding_ignores=frozenset({CheXpertObservation.SUPPORT_DEVICES.value}),
        vocabulary="chexpert.yaml",
    ),
}


def get_schema(name: str) -> LabelSchema:
    """Return the schema called ``name`` (``chestxray14`` or ``chexpert``)."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ConfigError(
            f"unknown label schema {name!r}{did_you_mean(name, SCHEMAS)}; {choices_hint(SCHEMAS)}"
        ) from None


def format_label(value: Certainty | None) -> str:
    """Write a label value as it appears in a label table: ``1``, ``0``, ``-1`` or ``""``."""
    return "" if value is None else str(int(value))


_PARSE = {
    "": None, "1": Certainty.POSITIVE, "1.0": Certainty.POSITIVE, "0": Certainty.NEGATIVE,
    "0.0": Certainty.NEGATIVE, "-1": Certainty.UNCERTAIN, "-1.0": Certainty.UNCERTAIN,
    "nan": None, "true": Certainty.POSITIVE, "false": Certainty.NEGATIVE,
}


def parse_label(text: str | int | float | None) -> Certainty | None:
    """Read a label-table value (``1``/``0``/``-1``/blank, also ``1.0`` or ``True``).

    Raises:
        ValueError: for any other value.
    """
    if text is None:
        return None
    if isinstance(text, bool):
        return Certainty.POSITIVE if text else Certainty.NEGATIVE
    key = str(text).strip().lower()
    if key not in _PARSE:
        raise ValueError(f"{text!r} is not a label value; expected 1, 0, -1 or blank")
    return _PARSE[key]
