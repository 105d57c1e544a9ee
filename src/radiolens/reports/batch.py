"""Label a stream of reports, in one process or several, in constant memory."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from radiolens.errors import ReportParseError
from radiolens.findings import LabelSchema
from radiolens.reports.labeler import ReportLabeler, ReportLabels
from radiolens.reports.readers import ReportRecord

__all__ = ["LabelOutcome", "label_records"]


@dataclass(frozen=True)
class LabelOutcome:
    """A record and either its labels or the reason it could not be labelled."""

    record: ReportRecord
    result: ReportLabels | None
    error: str | None = None


def label_records(records: Iterable[ReportRecord], labeler: ReportLabeler, workers: int = 1,
                  chunk_size: int = 256) -> Iterator[LabelOutcome]:
    """Label ``records`` in input order.

    With ``workers > 1`` the work is spread over that many processes; at most
    ``2 * workers`` chunks of ``chunk_size`` records are in flight at any time, so
    memory stays constant however long the input is.
    """
    if workers <= 1:
        if labeler.matcher_ is None:
            labeler.load()
        for record in records:
            yield _label_one(labeler, record)
        return
    assert isinstance(labeler.schema, str | LabelSchema)
    init = (labeler.schema, tuple(str(r) for r in labeler.rules), tuple(labeler.sections))
    it = iter(records)
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                             initargs=init) as pool:
        pending: deque[Future[list[LabelOutcome]]] = deque()
        while True:
            while len(pending) < 2 * workers:
                chunk = list(itertools.islice(it, chunk_size))
                if not chunk:
                    break
                pending.append(pool.submit(_label_chunk, chunk))
            if not pending:
                return
            yield from pending.popleft().result()


def _label_one(labeler: ReportLabeler, record: ReportRecord) -> LabelOutcome:
    if record.error:
        return LabelOutcome(record, None, record.error)
    try:
        return LabelOutcome(record, labeler.label(record.fields, id=record.id))
    except ReportParseError as exc:
        return LabelOutcome(record, None, str(exc))


_worker_labeler: ReportLabeler | None = None


def _init_worker(schema: str | LabelSchema, rules: tuple[str, ...],
                 sections: tuple[str, ...]) -> None:
    global _worker_labeler
    _worker_labeler = ReportLabeler(schema, [Path(r) for r in rules], sections).load()


def _label_chunk(chunk: list[ReportRecord]) -> list[LabelOutcome]:
    assert _worker_labeler is not None
    return [_label_one(_worker_labeler, r) for r in chunk]
