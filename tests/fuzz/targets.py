"""Hostile-input fuzz targets shared by the CI fuzz tests and ``bench/fuzz_inputs.py``.

Each target takes bytes, feeds them to one radiolens reader and returns. The contract:
the reader either returns a result or raises a :class:`~radiolens.errors.RadiolensError`
(a clean refusal); any other exception is a crash, and running past the per-input time
limit is a hang. Inputs are seed files (valid PNG, JPEG, DICOM, CSV, JSONL, OpenI XML)
changed by a list of :data:`Op` edits, so Hypothesis can shrink a failing input to the
fewest edits and the bench can draw edits quickly from a seeded ``random.Random``.

Targets: ``dicom-ingest`` (pydicom read as the upload path does, then
:func:`radiolens.receiver.ingest_dataset`), ``image`` (:func:`radiolens.imaging.read_image`
on a file), ``reports-csv`` / ``reports-jsonl`` / ``reports-xml``
(:func:`radiolens.reports.readers.read_reports`) and ``tables``
(:func:`radiolens.data.tables.read_label_table`).
"""

from __future__ import annotations

import contextlib
import random
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from radiolens.errors import RadiolensError

__all__ = [
    "TARGETS",
    "Hang",
    "Op",
    "Outcome",
    "Target",
    "apply_ops",
    "crash_signature",
    "make_target",
    "random_ops",
    "run_one",
    "scratch_target",
    "time_limit",
]

#: One edit: (kind, position in [0, 1), payload). Kinds: ``flip`` (xor a byte with
#: payload[0]), ``insert`` (payload), ``delete`` (len(payload) bytes), ``replace``
#: (overwrite with payload), ``truncate``, ``repeat`` (repeat the next len(payload)
#: bytes ``payload[0]`` times, at most 64).
Op = tuple[str, float, bytes]
OP_KINDS = ("flip", "insert", "delete", "replace", "truncate", "repeat")

#: Tokens worth inserting, per kind of input: delimiters, quotes, numbers at the edges.
COMMON_TOKENS: tuple[bytes, ...] = (
    b"\x00", b"\xff", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x80",
    b"-1", b"0", b"65535", b"4294967295", b"1e309", b"nan", b"\xc3\x28", b"\xef\xbb\xbf",
    b"\xed\xa0\x80", b"\r", b"\n", b"\r\n", b"\t",
)
TEXT_TOKENS: tuple[bytes, ...] = (
    b",", b'"', b'""', b"\\", b"'", b"{", b"}", b"[", b"]", b":", b"null", b"true", b"1.0",
    b"-1", b"-1.0", b"True", b"NaN", b"Infinity", b"1e99999", b"/../../etc/passwd",
    b"<", b">", b"&amp;", b"&#0;", b"<![CDATA[", b"]]>", b"<!DOCTYPE a [<!ENTITY e 'x'>]>",
    b"&e;", b"\x85", "\u2028".encode(), b"id", b"image",
    b"patient_id", b"pneumonia", b"normal", b"findings", b"impression", b"report",
)


@dataclass(frozen=True)
class Outcome:
    """What one input did: ``ok``, ``rejected`` (a RadiolensError), ``crash`` or ``hang``."""

    kind: str
    seconds: float
    error: BaseException | None = None
    signature: str = ""


class Hang(BaseException):
    """Raised inside a target that ran past its time limit (a BaseException, so no
    ``except Exception`` in the code under test swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds`` (SIGALRM; Unix only).

    Code stuck inside one C call is interrupted only when the call returns; the caller
    also compares the elapsed time with the limit.
    """
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Hang(f"ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def apply_ops(data: bytes, ops: list[Op]) -> bytes:
    """Apply edits to ``data`` (positions are fractions of the current length)."""
    buf = bytearray(data)
    for kind, where, payload in ops:
        n = len(buf)
        pos = min(int(where * (n + 1)), n)
        if kind == "flip" and n:
            i = min(pos, n - 1)
            buf[i] ^= (payload[:1] or b"\x01")[0] or 1
        elif kind == "insert":
            buf[pos:pos] = payload
        elif kind == "delete":
            del buf[pos:pos + max(1, len(payload))]
        elif kind == "replace":
            buf[pos:pos + len(payload)] = payload
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "repeat":
            chunk = bytes(buf[pos:pos + max(1, len(payload))])
            times = min((payload[:1] or b"\x02")[0], 64)
            buf[pos:pos] = chunk * times
    return bytes(buf)


def random_ops(rng: random.Random, tokens: tuple[bytes, ...], max_ops: int = 6) -> list[Op]:
    """Draw a few edits (the bench's mutator)."""
    ops: list[Op] = []
    for _ in range(rng.randint(1, max_ops)):
        kind = rng.choice(OP_KINDS)
        if kind in ("insert", "replace") and rng.random() < 0.6:
            payload = rng.choice(tokens)
        elif kind == "truncate":
            payload = b""
        else:
            payload = rng.randbytes(rng.choice((1, 1, 2, 4, 8, 16)))
        ops.append((kind, rng.random(), payload))
    return ops


def crash_signature(exc: BaseException) -> str:
    """``Type at file:line`` of the innermost radiolens frame (else the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/radiolens/" in f.filename.replace("\\", "/")]
    chosen = ours or list(frames)
    where = f"{Path(chosen[-1].filename).name}:{chosen[-1].lineno}" if chosen else "?"
    return f"{type(exc).__name__} at {where}"


@dataclass
class Target:
    """One fuzz target: seeds, tokens and the function under test.

    Attributes:
        name: the target's name (``--target``).
        seeds: valid inputs the edits start from.
        tokens: tokens the mutator inserts.
        call: feeds one input to the reader; raises what the reader raises.
        limit_s: the per-input time limit.
    """

    name: str
    seeds: list[bytes]
    tokens: tuple[bytes, ...]
    call: Callable[[bytes, int], None]
    limit_s: float = 2.0
    workdir: Path = field(default_factory=Path)
    close: Callable[[], None] = lambda: None

    def input(self, seed_index: int, ops: list[Op]) -> bytes:
        return apply_ops(self.seeds[seed_index % len(self.seeds)], ops)


def run_one(target: Target, data: bytes, seed_index: int = 0) -> Outcome:
    """Run one input and classify it (see the module docstring)."""
    started = time.perf_counter()
    try:
        with time_limit(target.limit_s):
            target.call(data, seed_index)
    except Hang as exc:
        return Outcome("hang", time.perf_counter() - started, exc, "hang")
    except RadiolensError as exc:
        kind = "rejected"
        error: BaseException | None = exc
    except Exception as exc:
        return Outcome("crash", time.perf_counter() - started, exc, crash_signature(exc))
    else:
        kind, error = "ok", None
    seconds = time.perf_counter() - started
    if seconds > target.limit_s:
        return Outcome("hang", seconds, None, "hang (uninterruptible)")
    return Outcome(kind, seconds, error)


# -- seeds -----------------------------------------------------------------------------


def _png(mode: str, size: tuple[int, int] = (24, 16), bits16: bool = False) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    if bits16:
        img = Image.fromarray(rng.integers(0, 65535, size[::-1], dtype=np.uint16))
    elif mode == "RGB":
        img = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8), "RGB")
    else:
        img = Image.fromarray(rng.integers(0, 255, size[::-1], dtype=np.uint8), "L")
    buf = BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    import numpy as np
    from PIL import Image

    img = Image.fromarray(np.tile(np.arange(32, dtype=np.uint8) * 8, (16, 1)), "L")
    buf = BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _dicom(bits: int = 16, photometric: str = "MONOCHROME2", preamble: bool = True,
           implicit: bool = False, voi: bool = False) -> bytes:
    import numpy as np

    from radiolens.imaging import to_secondary_capture

    arr = (np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 37 % (1 << min(bits, 12)))
    ds = to_secondary_capture(arr.astype(np.uint8 if bits == 8 else np.uint16),
                              patient_id="FUZZ-1", patient_name="Fuzz^Seed",
                              study_instance_uid="1.2.826.0.1.3680043.8.498.1",
                              accession_number="A1", view_position="PA")
    ds.PhotometricInterpretation = photometric
    if bits == 16:
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
    if voi:
        ds.WindowCenter = 1000
        ds.WindowWidth = 2000
    if implicit:
        from pydicom.uid import ImplicitVRLittleEndian

        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    data = buf.getvalue()
    return data if preamble else data[128 + 4:]


_CSV_REPORTS = (
    b"id,findings,impression\n"
    b"r1,No pneumothorax. Small left effusion.,Possible pneumonia.\n"
    b'r2,"Heart size normal, lungs clear.",No acute disease.\n'
    b"r3,,Cardiomegaly.\n"
)
_TSV_REPORTS = b"id\treport\nx1\tNo effusion.\nx2\tMild edema, may be pneumonia.\n"
_JSONL_REPORTS = (
    b'{"id": "j1", "findings": "No pneumothorax.", "impression": "Normal."}\n'
    b'{"id": 2, "report": "Left lower lobe consolidation, likely pneumonia."}\n'
    b'\n{"id": "j3", "text": "Possible small effusion."}\n'
)
_OPENI_XML = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<eCitation><uId id="CXR1"/>'
    b'<MedlineCitation><Article><Abstract>'
    b'<AbstractText Label="FINDINGS">The heart is normal in size. No effusion.</AbstractText>'
    b'<AbstractText Label="IMPRESSION">No acute <b>disease</b>.</AbstractText>'
    b"</Abstract></Article></MedlineCitation></eCitation>\n"
)
_TABLE = (
    b"image,patient_id,split,sex,age,view,pneumonia,normal\n"
    b"img0.png,p1,train,M,45.0,PA,1,0\n"
    b"img1.png,p1,valid,female,61,AP Supine,-1,\n"
    b"img0.png,p2,test,,,,0.0,1.0\n"
    b"img1.png,,train,o,nan,pa,True,False\n"
)


def make_target(name: str, workdir: Path) -> Target:
    """Build target ``name`` with its scratch files under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    if name == "dicom-ingest":
        return _ingest_target(workdir)
    if name == "image":
        return _image_target(workdir)
    if name.startswith("reports-"):
        return _reports_target(name, workdir)
    if name == "tables":
        return _tables_target(workdir)
    raise KeyError(f"unknown fuzz target {name!r}; known: {', '.join(TARGETS)}")


def _ingest_target(workdir: Path) -> Target:
    import pydicom

    from radiolens.imaging import has_dicom_preamble
    from radiolens.receiver import ingest_dataset
    from radiolens.worklist import open_worklist

    data_dir = workdir / "data"
    engine = open_worklist(data_dir / "worklist.db")

    def call(data: bytes, seed_index: int) -> None:
        preamble = has_dicom_preamble(data[:132])
        try:  # as the HTTP upload does: pydicom's own errors are a refusal there
            ds = pydicom.dcmread(BytesIO(data), force=not preamble)
        except Exception:
            return
        ingest_dataset(data_dir, engine, ds, encoded=data if preamble else None)

    seeds = [_dicom(), _dicom(8), _dicom(photometric="MONOCHROME1", voi=True),
             _dicom(preamble=False, implicit=True)]
    dicom_tokens = (b"DICM", b"\x02\x00\x10\x00", b"\xe0\x7f\x10\x00", b"OB\x00\x00",
                    b"SQ\x00\x00\xff\xff\xff\xff", b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0",
                    b"UL\x04\x00", b"1.2.840.10008.1.2.4.50", b"1.2.840.10008.1.2.2",
                    b"MONOCHROME1", b"RGB\x20", b"YBR_FULL")
    return Target("dicom-ingest", seeds, COMMON_TOKENS + dicom_tokens, call, 3.0, workdir,
                  engine.dispose)


def _image_target(workdir: Path) -> Target:
    from radiolens.imaging import read_image

    suffixes = [".png", ".png", ".png", ".jpg", ".dcm", ".dcm", ".dcm", ""]
    seeds = [_png("L"), _png("RGB"), _png("L", bits16=True), _jpeg(), _dicom(),
             _dicom(8, photometric="MONOCHROME1"), _dicom(voi=True),
             _dicom(preamble=False, implicit=True)]

    def call(data: bytes, seed_index: int) -> None:
        path = workdir / f"input{suffixes[seed_index % len(suffixes)]}"
        path.write_bytes(data)
        read_image(path)

    tokens = (*COMMON_TOKENS, b"IHDR", b"IDAT", b"IEND", b"PLTE", b"tRNS", b"eXIf",
                              b"\xff\xd8\xff\xe1", b"\xff\xc0", b"\xff\xda", b"DICM",
                              b"\xe0\x7f\x10\x00", b"MONOCHROME1", b"\x28\x00\x10\x00")
    return Target("image", seeds, tokens, call, 3.0, workdir)


def _reports_target(name: str, workdir: Path) -> Target:
    from radiolens.reports.readers import read_reports

    fmt = name.removeprefix("reports-")
    if fmt == "csv":
        seeds, suffixes = [_CSV_REPORTS, _TSV_REPORTS], [".csv", ".tsv"]
    elif fmt == "jsonl":
        seeds, suffixes = [_JSONL_REPORTS], [".jsonl"]
    elif fmt == "xml":
        seeds, suffixes = [_OPENI_XML], [".xml"]
    else:
        raise KeyError(f"unknown fuzz target {name!r}")
    reader_fmt = "openi" if fmt == "xml" else fmt

    def call(data: bytes, seed_index: int) -> None:
        path = workdir / f"reports{suffixes[seed_index % len(suffixes)]}"
        path.write_bytes(data)
        for record in read_reports(path, reader_fmt):
            assert isinstance(record.id, str) and isinstance(record.fields, dict)

    return Target(name, seeds, COMMON_TOKENS + TEXT_TOKENS, call, 2.0, workdir)


def _tables_target(workdir: Path) -> Target:
    from radiolens.data.tables import read_label_table

    for i in range(2):
        (workdir / f"img{i}.png").write_bytes(_png("L", (4, 4)))
    path = workdir / "labels.csv"

    def call(data: bytes, seed_index: int) -> None:
        path.write_bytes(data)
        labels = ("pneumonia", "pneumonia,abnormal", "normal")[seed_index % 3]
        read_label_table(path, labels, on_missing="drop" if seed_index % 2 else "raise",
                         where={"split": "train,val,test"} if seed_index % 3 == 2 else None)

    return Target("tables", [_TABLE, _TABLE, _TABLE], COMMON_TOKENS + TEXT_TOKENS, call, 2.0,
                  workdir)


TARGETS: tuple[str, ...] = ("dicom-ingest", "image", "reports-csv", "reports-jsonl",
                            "reports-xml", "tables")


@contextlib.contextmanager
def scratch_target(name: str) -> Iterator[Target]:
    """A target whose scratch folder is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"radiolens-fuzz-{name}-") as tmp:
        target = make_target(name, Path(tmp))
        try:
            yield target
        finally:
            target.close()
