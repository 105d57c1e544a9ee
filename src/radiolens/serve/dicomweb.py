"""DICOMweb (PS3.18) over the stored studies: QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Routes live under ``/dicomweb`` and need the same authentication as ``/api``:

* QIDO-RS: ``GET /dicomweb/studies``, ``.../studies/{study}/series``,
  ``.../series/{series}/instances`` (``application/dicom+json``);
* WADO-RS: ``.../instances/{sop}`` (``application/dicom``, or ``multipart/related;
  type="application/dicom"`` when the client asks for it), a study or series as
  multipart, ``.../frames/1`` (uncompressed pixel data), ``.../metadata`` at each level;
* STOW-RS: ``POST /dicomweb/studies``, through :func:`radiolens.receiver.ingest.ingest_dataset`,
  the receiver's own ingest path.

A study's instances are the images the service received plus the results the worker made
for it (the Comprehensive SR and the heatmap Secondary Captures under ``results/<study>/``),
so any DICOMweb client (OHIF, ``dicomweb-client``, Orthanc's plugin) sees both.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from radiolens.errors import InstanceRefused
from radiolens.imaging.checks import DEFAULT_MAX_PIXELS
from radiolens.worklist import Instance, Patient, Study

__all__ = ["DICOM_JSON", "dicomweb_router"]

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"

#: Attributes returned by QIDO-RS at each level (PS3.18 table 10.6.3-3 and friends).
_STUDY_KEYS = ("SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber",
               "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate",
               "PatientSex", "StudyInstanceUID", "StudyID", "StudyDescription")
_SERIES_KEYS = ("SpecificCharacterSet", "Modality", "SeriesInstanceUID", "SeriesNumber",
                "SeriesDescription", "StudyInstanceUID")
_INSTANCE_KEYS = ("SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "InstanceNumber",
                  "Rows", "Columns", "BitsAllocated", "NumberOfFrames", "StudyInstanceUID",
                  "SeriesInstanceUID")

#: Largest number of results one QIDO-RS search returns.
MAX_LIMIT = 1000


@dataclass(frozen=True)
class StoredInstance:
    """One instance of a study as DICOMweb sees it: its header and its file."""

    path: Path
    header: Dataset

    @property
    def series_uid(self) -> str:
        return str(self.header.get("SeriesInstanceUID", ""))

    @property
    def sop_uid(self) -> str:
        return str(self.header.get("SOPInstanceUID", ""))


class _HeaderCache:
    """Headers read once per file (keyed by path, size and modification time)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._items: dict[tuple[str, int, int], Dataset] = {}

    def read(self, path: Path) -> Dataset | None:
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_size, st.st_mtime_ns)
        ds = self._items.get(key)
        if ds is None:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:  # a result file being replaced, or not DICOM: skip it
                return None
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = ds
        return ds


def _element_value(ds: Dataset, keyword: str) -> Any:
    value = ds.get(keyword)
    return None if value in (None, "") else value


def _json_of(ds: Dataset, keys: Iterable[str], extra: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """``keys`` of ``ds`` (those it has) plus ``extra`` as a DICOM JSON object."""
    out = Dataset()
    for keyword in keys:
        if keyword in ds:
            out[keyword] = ds[keyword]
    for keyword, value in (extra or {}).items():
        setattr(out, keyword, value)
    return out.to_json_dict()


def _json_response(items: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(items, media_type=DICOM_JSON)


def _multipart(parts: Sequence[bytes], content_type: str, part_params: str = "") -> Response:
    """``parts`` as one ``multipart/related`` body; ``part_params`` follow each part's type."""
    boundary = secrets.token_hex(16)
    body = BytesIO()
    for data in parts:
        body.write(f"--{boundary}\r\nContent-Type: {content_type}{part_params}\r\n\r\n"
                   .encode())
        body.write(data)
        body.write(b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return Response(body.getvalue(), media_type=(
        f'multipart/related; type="{content_type}"; boundary={boundary}'))


def _wants_multipart(request: Request) -> bool:
    return "multipart/related" in request.headers.get("accept", "")


def dicomweb_router(dependencies: Sequence[Any]) -> APIRouter:
    """The DICOMweb routes, each behind ``dependencies`` (the API's authentication)."""
    router = APIRouter(prefix="/dicomweb", tags=["dicomweb"], dependencies=list(dependencies))
    cache = _HeaderCache()

    def ctx_of(request: Request) -> Any:
        return request.app.state.ctx

    def study_instances(request: Request, study_uid: str) -> list[StoredInstance]:
        ctx = ctx_of(request)
        data_dir = Path(ctx.data_dir)
        with Session(ctx.engine) as session:
            study = session.scalars(select(Study).where(
                Study.study_instance_uid == study_uid)).first()
            if study is None:
                raise HTTPException(404, f"no study {study_uid}")
            paths = [data_dir / p for p in session.scalars(
                select(Instance.path).where(Instance.study_fk == study.id)
                .order_by(Instance.id))]
        results = data_dir / "results" / study_uid
        if results.is_dir():
            paths += sorted(results.rglob("*.dcm"))
        found = []
        for path in paths:
            header = cache.read(path)
            if header is not None and str(header.get("StudyInstanceUID", "")) == study_uid:
                found.append(StoredInstance(path, header))
        return found

    def select_instances(request: Request, study: str, series: str | None = None,
                         sop: str | None = None) -> list[StoredInstance]:
        items = [i for i in study_instances(request, study)
                 if (series is None or i.series_uid == series)
                 and (sop is None or i.sop_uid == sop)]
        if not items:
            what = f"instance {sop}" if sop else f"series {series}" if series else "instance"
            raise HTTPException(404, f"no {what} in study {study}")
        return items

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/dicomweb"

    # ---------------------------------------------------------------- QIDO-RS
    @router.get("/studies", summary="QIDO-RS: search for studies")
    def search_studies(
        request: Request,
        patient_id: str | None = Query(None, alias="PatientID"),
        accession: str | None = Query(None, alias="AccessionNumber"),
        study_uids: str | None = Query(None, alias="StudyInstanceUID"),
        study_date: str | None = Query(None, alias="StudyDate"),
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
        offset: int = Query(0, ge=0),
    ) -> JSONResponse:
        ctx = ctx_of(request)
        query = select(Study).order_by(Study.received_at.desc(), Study.id.desc())
        if study_uids:
            query = query.where(Study.study_instance_uid.in_(study_uids.split(",")))
        if accession:
            query = query.where(Study.accession_number == accession)
        if patient_id:
            query = query.join(Patient, Study.patient_fk == Patient.id).where(
                Patient.patient_id == patient_id)
        if study_date:
            query = _date_filter(query, study_date)
        with Session(ctx.engine) as session:
            uids = list(session.scalars(
                query.with_only_columns(Study.study_instance_uid).offset(offset).limit(limit)))
        out = []
        for uid in uids:
            items = study_instances(request, uid)
            if not items:
                continue
            first = next((i for i in items if "PixelData" in i.header or
                          i.header.get("Modality") not in ("SR", None)), items[0])
            modalities = sorted({str(i.header.get("Modality", "")) for i in items} - {""})
            out.append(_json_of(first.header, _STUDY_KEYS, {
                "ModalitiesInStudy": modalities,
                "NumberOfStudyRelatedSeries": len({i.series_uid for i in items}),
                "NumberOfStudyRelatedInstances": len(items),
                "RetrieveURL": f"{base_url(request)}/studies/{uid}",
            }))
        return _json_response(out)

    @router.get("/studies/{study}/series", summary="QIDO-RS: search for a study's series")
    def search_series(request: Request, study: str,
                      modality: str | None = Query(None, alias="Modality")) -> JSONResponse:
        by_series: dict[str, list[StoredInstance]] = {}
        for item in study_instances(request, study):
            by_series.setdefault(item.series_uid, []).append(item)
        out = []
        for uid, items in by_series.items():
            header = items[0].header
            if modality and str(header.get("Modality", "")) != modality:
                continue
            out.append(_json_of(header, _SERIES_KEYS, {
                "NumberOfSeriesRelatedInstances": len(items),
                "RetrieveURL": f"{base_url(request)}/studies/{study}/series/{uid}",
            }))
        return _json_response(out)

    @router.get("/studies/{study}/series/{series}/instances",
                summary="QIDO-RS: search for a series' instances")
    def search_instances(request: Request, study: str, series: str) -> JSONResponse:
        url = base_url(request)
        return _json_response([
            _json_of(i.header, _INSTANCE_KEYS, {"RetrieveURL": (
                f"{url}/studies/{study}/series/{series}/instances/{i.sop_uid}")})
            for i in select_instances(request, study, series)])

    @router.get("/studies/{study}/instances", summary="QIDO-RS: search for a study's instances")
    def search_study_instances(request: Request, study: str) -> JSONResponse:
        url = base_url(request)
        return _json_response([
            _json_of(i.header, _INSTANCE_KEYS, {"RetrieveURL": (
                f"{url}/studies/{study}/series/{i.series_uid}/instances/{i.sop_uid}")})
            for i in study_instances(request, study)])

    # ---------------------------------------------------------------- WADO-RS
    def retrieve(request: Request, items: list[StoredInstance], single: bool) -> Response:
        blobs = [i.path.read_bytes() for i in items]
        if single and not _wants_multipart(request):
            return Response(blobs[0], media_type="application/dicom")
        return _multipart(blobs, "application/dicom")

    @router.get("/studies/{study}", summary="WADO-RS: retrieve a study")
    def retrieve_study(request: Request, study: str) -> Response:
        return retrieve(request, select_instances(request, study), single=False)

    @router.get("/studies/{study}/series/{series}", summary="WADO-RS: retrieve a series")
    def retrieve_series(request: Request, study: str, series: str) -> Response:
        return retrieve(request, select_instances(request, study, series), single=False)

    @router.get("/studies/{study}/series/{series}/instances/{sop}",
                summary="WADO-RS: retrieve an instance")
    def retrieve_instance(request: Request, study: str, series: str, sop: str) -> Response:
        return retrieve(request, select_instances(request, study, series, sop), single=True)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{frames}",
                summary="WADO-RS: retrieve frames (uncompressed)")
    def retrieve_frames(request: Request, study: str, series: str, sop: str, frames: str
                        ) -> Response:
        item = select_instances(request, study, series, sop)[0]
        try:
            numbers = [int(f) for f in frames.split(",")]
        except ValueError:
            raise HTTPException(400, "frame numbers must be whole numbers, e.g. 1") from None
        ds = pydicom.dcmread(item.path)
        if "PixelData" not in ds:
            raise HTTPException(404, f"instance {sop} has no pixel data")
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        if any(n < 1 or n > n_frames for n in numbers):
            raise HTTPException(404, f"instance {sop} has {n_frames} frame(s)")
        return _multipart([_frame_bytes(ds, n, n_frames) for n in numbers],
                          "application/octet-stream",
                          f"; transfer-syntax={ExplicitVRLittleEndian}")

    def metadata(request: Request, items: list[StoredInstance]) -> JSONResponse:
        url = base_url(request)
        out = []
        for item in items:
            ds = pydicom.dcmread(item.path)
            uri = (f"{url}/studies/{ds.StudyInstanceUID}/series/{item.series_uid}"
                   f"/instances/{item.sop_uid}")
            out.append(ds.to_json_dict(bulk_data_threshold=1024,
                                       bulk_data_element_handler=_bulk_uri(uri)))
        return _json_response(out)

    @router.get("/studies/{study}/metadata", summary="WADO-RS: a study's metadata")
    def study_metadata(request: Request, study: str) -> JSONResponse:
        return metadata(request, select_instances(request, study))

    @router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: series metadata")
    def series_metadata(request: Request, study: str, series: str) -> JSONResponse:
        return metadata(request, select_instances(request, study, series))

    @router.get("/studies/{study}/series/{series}/instances/{sop}/metadata",
                summary="WADO-RS: instance metadata")
    def instance_metadata(request: Request, study: str, series: str, sop: str) -> JSONResponse:
        return metadata(request, select_instances(request, study, series, sop))

    # ---------------------------------------------------------------- STOW-RS
    @router.post("/studies", summary="STOW-RS: store instances")
    async def store(request: Request) -> JSONResponse:
        return await _stow(request, None, base_url(request))

    @router.post("/studies/{study}", summary="STOW-RS: store instances into a study")
    async def store_into(request: Request, study: str) -> JSONResponse:
        return await _stow(request, study, base_url(request))

    return router


def _bulk_uri(instance_url: str) -> Callable[[Any], str]:
    def handler(element: Any) -> str:
        if element.tag == 0x7FE00010:
            return f"{instance_url}/frames/1"
        return f"{instance_url}/bulk/{element.tag:08X}"
    return handler


def _frame_bytes(ds: Dataset, number: int, n_frames: int) -> bytes:
    """Frame ``number`` (1-based) of ``ds`` as uncompressed little-endian pixel bytes."""
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        data = bytes(ds.PixelData)
        size = len(data) // n_frames
        return data[(number - 1) * size:number * size]
    pixels = ds.pixel_array
    frame = pixels[number - 1] if n_frames > 1 else pixels
    return bytes(frame.astype(frame.dtype.newbyteorder("<")).tobytes())


def _date_filter(query: Any, text: str) -> Any:
    """``StudyDate`` as ``YYYYMMDD``, ``YYYYMMDD-``, ``-YYYYMMDD`` or ``A-B`` (PS3.4 range)."""
    import datetime as dt

    def parse(part: str) -> dt.date | None:
        part = part.strip()
        if not part:
            return None
        try:
            return dt.datetime.strptime(part, "%Y%m%d").date()
        except ValueError:
            raise HTTPException(400, f"StudyDate {part!r} is not YYYYMMDD") from None

    if "-" in text:
        lo, hi = (parse(p) for p in text.split("-", 1))
        if lo:
            query = query.where(Study.study_date >= lo)
        if hi:
            query = query.where(Study.study_date <= hi)
        return query
    return query.where(Study.study_date == parse(text))


def _parts(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a ``multipart/related`` body (headers lower-cased, raw data)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "STOW-RS needs a multipart/related body with a boundary")
    parts: list[tuple[dict[str, str], bytes]] = []
    state: dict[str, Any] = {"field": b"", "value": b"", "headers": {}, "data": bytearray()}

    def on_part_begin() -> None:
        state["headers"], state["data"] = {}, bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = (
            state["value"].decode("latin-1").strip())
        state["field"], state["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"] += data[start:end]

    def on_part_end() -> None:
        parts.append((state["headers"], bytes(state["data"])))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end})
    parser.write(body)
    parser.finalize()
    return parts


async def _stow(request: Request, study: str | None, url: str) -> JSONResponse:
    from radiolens.receiver.ingest import STATUS_DECODE_FAILED, ingest_dataset

    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/related"):
        raise HTTPException(415, 'STOW-RS takes multipart/related; type="application/dicom"')
    parts = _parts(await request.body(), content_type)
    ctx = request.app.state.ctx
    engine: Engine = ctx.engine
    stored, failed = [], []
    for headers, data in parts:
        part_type = headers.get("content-type", "application/dicom").split(";")[0].strip()
        ref = Dataset()
        try:
            if part_type != "application/dicom":
                raise InstanceRefused(STATUS_DECODE_FAILED, f"part of type {part_type!r} "
                                      "is not application/dicom")
            try:
                ds = pydicom.dcmread(BytesIO(data))
            except Exception as exc:
                raise InstanceRefused(STATUS_DECODE_FAILED,
                                      "not a readable DICOM instance") from exc
            ref.ReferencedSOPClassUID = str(ds.get("SOPClassUID", ""))
            ref.ReferencedSOPInstanceUID = str(ds.get("SOPInstanceUID", ""))
            if study is not None and str(ds.get("StudyInstanceUID", "")) != study:
                raise InstanceRefused(0xA900, "StudyInstanceUID differs from the one in "
                                      "the URL")
            study_uid, _created = ingest_dataset(
                Path(ctx.data_dir), engine, ds, encoded=data,
                max_pixels=getattr(ctx, "max_image_pixels", DEFAULT_MAX_PIXELS))
        except InstanceRefused as exc:
            ref.FailureReason = exc.status
            failed.append(ref)
            logger.warning("STOW-RS instance refused: %s", exc.reason)
            continue
        ref.RetrieveURL = (f"{url}/studies/{study_uid}/series/{ds.SeriesInstanceUID}"
                           f"/instances/{ds.SOPInstanceUID}")
        stored.append(ref)
    answer = Dataset()
    if study is not None or stored:
        answer.RetrieveURL = f"{url}/studies/{study or study_uid}"
    answer.ReferencedSOPSequence = stored
    if failed:
        answer.FailedSOPSequence = failed
    code = 200 if not failed else 202 if stored else 409
    return JSONResponse(answer.to_json_dict(), status_code=code, media_type=DICOM_JSON)
