"""Read reports from the files people have: CSV, JSONL, a folder of .txt, OpenI XML.

Every reader streams: it holds one record at a time, so a file of a million reports is
read in constant memory. A record that cannot be used (no id, no text, bytes that are
not UTF-8, a line that is not JSON) is yielded with ``error`` set and its location, so
the caller can stop or skip it and say so; a file that cannot be read at all raises
:class:`~radiolens.errors.InputFormatError`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from radiolens._suggest import choices_hint, did_you_mean
from radiolens.errors import InputFormatError

__all__ = ["FORMATS", "ReportRecord", "detect_format", "read_reports"]

FORMATS = ("csv", "jsonl", "txt", "openi")

#: Text fields used when the caller names none, in order of preference.
DEFAULT_TEXT_FIELDS: tuple[tuple[str, ...], ...] = (("findings", "impression"), ("report",),
                                                    ("text",))


@dataclass
class ReportRecord:
    """One report read from a file.

    Attributes:
        id: the report id ("" when it could not be read).
        fields: text field name to text, in the order chosen.
        source: where it came from, as ``file:line`` or ``archive:member``.
        error: why the record cannot be labelled, or ``None``.
    """

    id: str
    fields: dict[str, str] = field(default_factory=dict)
    source: str = ""
    error: str | None = None


def detect_format(path: Path) -> str:
    """Guess the input format from the path: a folder, or the file's extension."""
    if path.is_dir():
        with os.scandir(path) as it:
            names = [e.name for e in it if e.is_file()]
        if any(n.lower().endswith(".xml") for n in names):
            return "openi"
        return "txt"
    name = path.name.lower()
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".tgz", ".tar.gz", ".tar", ".xml")):
        return "openi"
    if name.endswith(".txt"):
        return "txt"
    raise InputFormatError(
        "cannot tell the input format from the file name; pass --format "
        f"({'/'.join(FORMATS)})", str(path))


def read_reports(path: str | Path, fmt: str = "auto", text_fields: Sequence[str] | None = None,
                 id_field: str = "id") -> Iterator[ReportRecord]:
    """Yield the reports in ``path`` one at a time.

    Args:
        path: a CSV, JSONL, a folder of ``.txt`` files (one report each; the id is the
            file name without ``.txt``), or OpenI XML (a folder of ``.xml`` or a ``.tgz``).
        fmt: ``csv``, ``jsonl``, ``txt``, ``openi`` or ``auto`` (from the path).
        text_fields: fields holding the report text (CSV/JSONL). By default
            ``findings`` and ``impression`` when present, else ``report``, else ``text``.
        id_field: the field holding the report id (CSV/JSONL).

    Raises:
        InputFormatError: the file is missing or unreadable, or lacks the id or text
            fields.
    """
    p = Path(path)
    if not p.exists():
        raise InputFormatError("no such file or folder", str(p))
    if fmt == "auto":
        fmt = detect_format(p)
    if fmt not in FORMATS:
        raise InputFormatError(f"unknown format {fmt!r}{did_you_mean(fmt, FORMATS)}; "
                               f"{choices_hint(FORMATS)}")
    fields = tuple(f.strip() for f in text_fields if f.strip()) if text_fields else None
    if fmt == "csv":
        return _read_csv(p, fields, id_field)
    if fmt == "jsonl":
        return _read_jsonl(p, fields, id_field)
    if fmt == "txt":
        return _read_txt(p)
    return _read_openi(p)


def _open_binary(path: Path) -> IO[bytes]:
    if path.is_dir():
        raise InputFormatError("is a folder, not a file; for a folder of .txt reports use "
                               "--format txt", str(path))
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputFormatError(f"cannot open: {exc.strerror or exc}", str(path)) from None


def _choose_fields(available: Sequence[str], wanted: tuple[str, ...] | None) -> tuple[str, ...]:
    if wanted:
        return wanted
    for group in DEFAULT_TEXT_FIELDS:
        present = tuple(f for f in group if f in available)
        if present:
            return present
    return ()


def _bad_text(value: str) -> bool:
    # surrogateescape turns undecodable bytes into lone surrogates U+DC80..U+DCFF
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _read_csv(path: Path, wanted: tuple[str, ...] | None, id_field: str) -> Iterator[ReportRecord]:
    raw = _open_binary(path)
    with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        sample = fh.read(65536)
        fh.seek(0)
        delimiter = "\t" if path.name.lower().endswith(".tsv") or (
            sample.count("\t") > sample.count(",")) else ","
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise InputFormatError(f"not a readable CSV file ({exc})", str(path)) from None
        if not header:
            raise InputFormatError("is empty (no header row)", str(path))
        if "\x00" in sample or any(_bad_text(h) for h in header):
            raise InputFormatError("not a text CSV file (not UTF-8); re-save it as UTF-8 "
                                   "text, or name its format with --format", str(path))
        header = [h.strip() for h in header]
        reader.fieldnames = header
        if id_field not in header:
            raise InputFormatError(
                f"has no {id_field!r} column{did_you_mean(id_field, header)}; choose the id "
                f"column with --id-field (columns: {', '.join(header)})", str(path))
        fields = _choose_fields(header, wanted)
        missing = [f for f in fields if f not in header]
        if not fields or missing:
            what = (f"no column {missing[0]!r}{did_you_mean(missing[0], header)}" if missing
                    else "no findings/impression, report or text column")
            raise InputFormatError(f"has {what}; choose the text columns with --text-fields "
                                   f"(columns: {', '.join(header)})", str(path))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield ReportRecord("", {}, f"{path}:{reader.line_num}", f"malformed CSV row: {exc}")
                continue
            where = f"{path}:{reader.line_num}"
            if None in row:
                yield ReportRecord(str(row.get(id_field) or ""), {}, where,
                                   f"the row has more values than the header has columns "
                                   f"({len(header)})")
                continue
            rid = (row.get(id_field) or "").strip()
            values = {f: row.get(f) or "" for f in fields}
            if _bad_text(rid) or any(_bad_text(v) for v in values.values()):
                yield ReportRecord(rid, {}, where, "the row has bytes that are not UTF-8; "
                                   "re-save the file as UTF-8")
                continue
            yield _finish(rid, values, where, id_field)


def _read_jsonl(path: Path, wanted: tuple[str, ...] | None,
                id_field: str) -> Iterator[ReportRecord]:
    with _open_binary(path) as fh:
        for lineno, line in enumerate(fh, 1):
            where = f"{path}:{lineno}"
            if not line.strip():
                continue
            try:
                obj: Any = json.loads(line.decode("utf-8-sig" if lineno == 1 else "utf-8"))
            except UnicodeDecodeError as exc:
                yield ReportRecord("", {}, where, f"bytes that are not UTF-8 at column "
                                   f"{exc.start + 1}; re-save the file as UTF-8")
                continue
            except json.JSONDecodeError as exc:
                yield ReportRecord("", {}, where, f"not valid JSON ({exc.msg} at column "
                                   f"{exc.colno})")
                continue
            if not isinstance(obj, dict):
                yield ReportRecord("", {}, where, "each line must be a JSON object")
                continue
            raw_id = obj.get(id_field)
            if raw_id is None or raw_id == "":
                keys = [str(k) for k in obj]
                yield ReportRecord("", {}, where, f"no {id_field!r} field"
                                   f"{did_you_mean(id_field, keys)}; choose the id field with "
                                   f"--id-field (fields: {', '.join(keys)})")
                continue
            fields = _choose_fields(list(obj), wanted)
            if not fields:
                yield ReportRecord(str(raw_id), {}, where,
                                   "no findings/impression, report or text field; choose the "
                                   f"text fields with --text-fields (fields: {', '.join(obj)})")
                continue
            values: dict[str, str] = {}
            bad = None
            for f in fields:
                v = obj.get(f)
                if v is None:
                    continue
                if not isinstance(v, str):
                    bad = f"field {f!r} holds {type(v).__name__}, not text"
                    break
                values[f] = v
            if bad:
                yield ReportRecord(str(raw_id), {}, where, bad)
                continue
            yield _finish(str(raw_id), values, where, id_field)


def _finish(rid: str, values: dict[str, str], where: str, id_field: str) -> ReportRecord:
    if not rid:
        return ReportRecord("", values, where, f"empty {id_field!r}")
    if not any(v.strip() for v in values.values()):
        return ReportRecord(rid, values, where, "empty report (no text in "
                            f"{', '.join(values) or 'the text fields'})")
    return ReportRecord(rid, values, where)


def _read_txt(path: Path) -> Iterator[ReportRecord]:
    files = [path] if path.is_file() else sorted(
        (Path(e.path) for e in os.scandir(path) if e.is_file() and e.name.lower().endswith(".txt")),
        key=lambda p: p.name)
    if not files:
        raise InputFormatError("holds no .txt reports", str(path))
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as exc:
            yield ReportRecord(f.stem, {}, str(f), f"cannot read: {exc.strerror or exc}")
            continue
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            yield ReportRecord(f.stem, {}, str(f), f"bytes that are not UTF-8 at byte "
                               f"{exc.start}; re-save the file as UTF-8")
            continue
        yield _finish(f.stem, {"report": text}, str(f), "id")


def _read_openi(path: Path) -> Iterator[ReportRecord]:
    if path.is_dir():
        files = sorted((Path(e.path) for e in os.scandir(path)
                        if e.is_file() and e.name.lower().endswith(".xml")), key=_natural)
        if not files:
            raise InputFormatError("holds no OpenI .xml reports", str(path))
        for f in files:
            try:
                data = f.read_bytes()
            except OSError as exc:
                yield ReportRecord(f.stem, {}, str(f), f"cannot read: {exc.strerror or exc}")
                continue
            yield _parse_openi(data, str(f), f.stem)
        return
    if path.name.lower().endswith(".xml"):
        yield _parse_openi(_open_binary(path).read(), str(path), path.stem)
        return
    try:
        tar = tarfile.open(path, "r|*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as exc:
        raise InputFormatError(f"not a readable .tgz archive ({exc})", str(path)) from None
    with tar:
        try:
            for member in tar:
                if not member.isfile() or not member.name.lower().endswith(".xml"):
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                name = Path(member.name).stem
                yield _parse_openi(fh.read(), f"{path}:{member.name}", name)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InputFormatError(f"the archive is truncated or corrupt ({exc})",
                                   str(path)) from None


def _natural(p: Path) -> tuple[int, str]:
    return (int(p.stem), "") if p.stem.isdigit() else (sys.maxsize, p.stem)


def _parse_openi(data: bytes, where: str, fallback_id: str) -> ReportRecord:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return ReportRecord(fallback_id, {}, where, f"not valid XML ({exc})")
    except (LookupError, ValueError) as exc:  # expat: an encoding it cannot decode
        return ReportRecord(fallback_id, {}, where, (
            f"the XML declaration names an encoding that cannot be read ({exc}); re-save "
            'the file as UTF-8 with <?xml version="1.0" encoding="utf-8"?>'))
    uid = root.find("uId")
    rid = (uid.get("id") if uid is not None else None) or fallback_id
    fields: dict[str, str] = {}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").strip().lower()
        if label:
            fields[label] = "".join(node.itertext()).strip()
    if not fields:
        return ReportRecord(rid, {}, where, "no <AbstractText Label=...> sections: is this an "
                            "OpenI (Indiana University) report?")
    return _finish(rid, fields, where, "id")
