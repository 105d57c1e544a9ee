"""What the radiologists' signed reads teach back: label rows for training, and agreement.

:func:`reviewed_labels` turns the read in force of every reviewed study into label-table
rows (the image files, a pseudonymous patient id, one column per finding: 1 present,
0 absent, -1 uncertain), which ``radiolens train`` reads like any label table.
:func:`agreement` compares the model's calls with the reviewers' per finding.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from radiolens.errors import WorklistError
from radiolens.worklist.models import Instance, Patient, Result, Review, Study

__all__ = ["CALL_VALUES", "FindingAgreement", "LabelRow", "agreement", "drift_warning",
           "pseudonym", "reviewed_labels"]

#: A reviewer's call as a label value (the CheXpert convention of radiolens tables).
CALL_VALUES: Mapping[str, int] = {"present": 1, "absent": 0, "uncertain": -1}


def pseudonym(secret: bytes, value: str, prefix: str = "P") -> str:
    """A stable pseudonymous id: HMAC-SHA256 of ``value`` under ``secret``, 16 hex digits."""
    return prefix + hmac.new(secret, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class LabelRow:
    """One image of a reviewed study with the reviewer's labels."""

    image: str
    patient_id: str
    study_id: str
    labels: dict[str, int]
    reviewed_at: dt.datetime
    version: int


def _reads_in_force(session: Session, since: dt.datetime | None) -> list[tuple[Study, Review]]:
    """The latest signed version of each reviewed study (signed after ``since``)."""
    reviews = session.scalars(select(Review).where(Review.action.in_(("sign", "amend")))
                              .order_by(Review.id)).all()
    latest: dict[int, Review] = {}
    for review in reviews:
        latest[review.study_fk] = review
    if since is not None:
        latest = {k: v for k, v in latest.items() if v.created_at > since}
    studies = {s.id: s for s in session.scalars(select(Study).where(
        Study.id.in_(list(latest)))).unique()}
    return [(studies[fk], latest[fk]) for fk in sorted(latest) if fk in studies]


def reviewed_labels(bind: Engine, secret: bytes, *, since: dt.datetime | None = None
                    ) -> list[LabelRow]:
    """Label rows from the signed reads (one row per image of each reviewed study).

    Args:
        bind: the worklist engine.
        secret: the key of the pseudonymous ids (keep it, so later exports agree).
        since: only reads signed after this time (for increments).
    """
    try:
        with Session(bind, expire_on_commit=False) as session:
            rows = []
            for study, review in _reads_in_force(session, since):
                patient = session.get(Patient, study.patient_fk) if study.patient_fk else None
                pid = pseudonym(secret, patient.patient_id if patient else study.study_instance_uid)
                labels = {k: CALL_VALUES[v] for k, v in (review.calls or {}).items()
                          if v in CALL_VALUES}
                for path in session.scalars(select(Instance.path).where(
                        Instance.study_fk == study.id).order_by(Instance.id)):
                    rows.append(LabelRow(image=path, patient_id=pid,
                                         study_id=pseudonym(secret, study.study_instance_uid, "S"),
                                         labels=labels, reviewed_at=review.created_at,
                                         version=review.version or 1))
            return rows
    except Exception as exc:
        raise WorklistError(f"worklist database error: {exc}") from exc


@dataclass(frozen=True)
class FindingAgreement:
    """The model's calls against the reviewers' for one finding (uncertain calls left out)."""

    finding: str
    n: int
    sensitivity: float | None
    sensitivity_ci: tuple[float, float] | None
    specificity: float | None
    specificity_ci: tuple[float, float] | None
    card_sensitivity: float | None = None
    card_specificity: float | None = None

    @property
    def drift(self) -> bool:
        """True when a model-card figure lies above the upper end of the 95 % interval."""
        pairs = ((self.card_sensitivity, self.sensitivity_ci),
                 (self.card_specificity, self.specificity_ci))
        return any(card is not None and ci is not None and card > ci[1] for card, ci in pairs)

    def to_dict(self) -> dict[str, Any]:
        return {"finding": self.finding, "n": self.n, "sensitivity": self.sensitivity,
                "sensitivity_ci": self.sensitivity_ci, "specificity": self.specificity,
                "specificity_ci": self.specificity_ci, "card_sensitivity": self.card_sensitivity,
                "card_specificity": self.card_specificity, "drift": self.drift}


def _rate(hits: int, n: int) -> tuple[float | None, tuple[float, float] | None]:
    if n == 0:
        return None, None
    from scipy.stats import binomtest

    ci = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    return hits / n, (float(ci.low), float(ci.high))


def agreement(bind: Engine, *, last_n: int = 200,
              card: Mapping[str, Mapping[str, float]] | None = None) -> list[FindingAgreement]:
    """Per finding, the model's sensitivity and specificity against the last ``last_n``
    signed reads, with Wilson 95 % intervals and the model card's validation figures."""
    card = card or {}
    try:
        with Session(bind) as session:
            pairs = _reads_in_force(session, None)[-last_n:]
            results = {r.id: r for r in session.scalars(select(Result).where(
                Result.id.in_([rv.result_fk for _, rv in pairs if rv.result_fk])))}
    except Exception as exc:
        raise WorklistError(f"worklist database error: {exc}") from exc
    counts: dict[str, list[int]] = {}  # tp, fn, tn, fp
    for _study, review in pairs:
        result = results.get(review.result_fk or -1)
        if result is None:
            continue
        flagged = {str(f) for f in result.flags or []}
        for finding, call in (review.calls or {}).items():
            if call == "uncertain":
                continue
            c = counts.setdefault(finding, [0, 0, 0, 0])
            truth, said = call == "present", finding in flagged
            c[(0 if said else 1) if truth else (3 if said else 2)] += 1
    out = []
    for finding in sorted(counts):
        tp, fn, tn, fp = counts[finding]
        sens, sens_ci = _rate(tp, tp + fn)
        spec, spec_ci = _rate(tn, tn + fp)
        figures = card.get(finding, {})
        out.append(FindingAgreement(finding, tp + fn + tn + fp, sens, sens_ci, spec, spec_ci,
                                    _number(figures.get("sensitivity")),
                                    _number(figures.get("specificity"))))
    return out


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def drift_warning(rows: Sequence[FindingAgreement], last_n: int) -> str | None:
    """A warning naming the findings whose agreement fell below the model card."""
    drifted = [r.finding for r in rows if r.drift]
    if not drifted:
        return None
    return (f"over the last {last_n} signed reads the model agrees with the reviewers "
            f"clearly less than its model card says for: {', '.join(drifted)}. Check the "
            "inputs (new equipment, protocol, population) before trusting its flags.")
