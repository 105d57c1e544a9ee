"""Label report records with Ray Data (``radiolens label --ray [ADDRESS]``).

The driver reads the input once, in chunks, into Ray's object store (which spills to disk
when it fills, so the driver's memory stays constant however many reports there are);
one Ray Data pipeline then labels the chunks with an actor pool of labellers (each
compiles the rules once) and returns the outcomes in input order, exactly those of
:func:`radiolens.reports.batch.label_records`. Rules files must be readable under the same
path on every node.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from radiolens.archive.ray_runtime import import_ray, pool_size, worker_failure
from radiolens.errors import ConfigError, ReportParseError
from radiolens.findings import LabelSchema
from radiolens.reports.batch import LabelOutcome
from radiolens.reports.labeler import ReportLabeler
from radiolens.reports.readers import ReportRecord

__all__ = ["LabelActor", "label_records_ray"]

logger = logging.getLogger(__name__)


class LabelActor:
    """Ray Data actor: one labeller, loaded once, labels batches of records."""

    def __init__(self, schema: str | LabelSchema, rules: tuple[str, ...],
                 sections: tuple[str, ...]) -> None:
        self.labeler = ReportLabeler(schema, [Path(r) for r in rules], sections).load()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        results: list[bytes] = []
        errors: list[str] = []
        for rid, fields, error in zip(batch["id"].tolist(), batch["fields"].tolist(),
                                      batch["error"].tolist(), strict=True):
            if error:
                results.append(b"")
                errors.append(error)
                continue
            try:
                labels = self.labeler.label(json.loads(fields), id=rid)
            except ReportParseError as exc:
                results.append(b"")
                errors.append(str(exc))
            else:
                results.append(pickle.dumps(labels, protocol=pickle.HIGHEST_PROTOCOL))
                errors.append("")
        return {"id": batch["id"], "source": batch["source"], "read_error": batch["error"],
                "result": np.array(results, dtype=object),
                "error": np.array(errors, dtype=object)}


def _put_chunks(ray: Any, records: Iterable[ReportRecord], chunk_size: int) -> tuple[list[Any],
                                                                                      int]:
    """Records into the object store as Arrow tables of up to ``chunk_size`` rows."""
    import pyarrow as pa

    refs = []
    n = 0
    it = iter(records)
    size = 64  # growing to chunk_size: a small input still makes several blocks
    while chunk := list(itertools.islice(it, size)):
        size = min(2 * size, chunk_size)
        table = pa.table({
            "id": [r.id for r in chunk],
            "fields": [json.dumps(r.fields, ensure_ascii=False) for r in chunk],
            "source": [r.source for r in chunk],
            "error": [r.error or "" for r in chunk],
        })
        refs.append(ray.put(table))
        n += len(chunk)
    return refs, n


def label_records_ray(records: Iterable[ReportRecord], labeler: ReportLabeler,
                      workers: int | None = None, batch_size: int = 256,
                      chunk_size: int = 8192) -> Iterator[LabelOutcome]:
    """Label ``records`` in input order on the Ray cluster of the current
    :func:`~radiolens.archive.ray_runtime.ray_session`.

    Args:
        records: the reports (read once, up front, into the object store).
        labeler: its schema, rules and sections are what each actor loads.
        workers: labeller actors (default: one per CPU of the cluster).
        batch_size: records per Ray Data batch.
        chunk_size: records per block in the object store.

    Yields:
        One :class:`~radiolens.reports.batch.LabelOutcome` per record, in input order.
        Outcomes carry the record's id and source (not its text).
    """
    ray = import_ray()
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be at least 1, not {workers}")
    assert isinstance(labeler.schema, str | LabelSchema)
    init = (labeler.schema, tuple(os.path.abspath(r) for r in labeler.rules),
            tuple(sorted(labeler.sections)))
    refs, n = _put_chunks(ray, records, chunk_size)
    if not n:
        return
    size = pool_size(ray, workers, 1.0)
    logger.info("Ray Data: %d report(s), %d labeller actor(s)", n, size)
    # small inputs: batches small enough that every actor gets some
    batch = max(1, min(batch_size, math.ceil(n / (2 * size))))
    ds = ray.data.from_arrow_refs(refs).map_batches(
        LabelActor, batch_size=batch, batch_format="numpy", fn_constructor_args=init,
        num_cpus=1, compute=ray.data.ActorPoolStrategy(size=size))
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for rid, source, read_error, result, error in zip(
                    batch["id"].tolist(), batch["source"].tolist(),
                    batch["read_error"].tolist(), batch["result"].tolist(),
                    batch["error"].tolist(), strict=True):
                record = ReportRecord(rid, source=source, error=read_error or None)
                if error:
                    yield LabelOutcome(record, None, error)
                else:
                    yield LabelOutcome(record, pickle.loads(result))  # written by LabelActor above
    except ray.exceptions.RayError as exc:
        raise worker_failure(exc, "the labeller") from None
