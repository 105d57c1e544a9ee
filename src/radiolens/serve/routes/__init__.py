"""The API's routes, one router per concern (FastAPI's "bigger applications" layout).

``worklist`` (studies, one study, events), ``results`` (draft, SR, FHIR, heatmaps),
``review`` (signed reads, priority, agreement), ``admin`` (upload, deliveries, requeue)
and ``docs`` (the OpenAPI page, behind login); DICOMweb is :mod:`radiolens.serve.dicomweb`.
"""

from __future__ import annotations

from radiolens.serve.routes import admin, docs, results, review, worklist

__all__ = ["admin", "docs", "results", "review", "worklist"]
