"""Short, derandomized hostile-input runs over the readers (CI); long runs: bench/fuzz_inputs.py.

Each target must answer every input with a result or a RadiolensError within its time
limit (see ``tests/fuzz/targets.py``). Crashes already found are listed in
:data:`KNOWN_CRASHES` (so the short run keeps looking for new ones) and each has a
regression test below, marked ``xfail(strict=True)``: when the reader is fixed, the
regression test passes, strict xfail fails it, and the entry here can go.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import (
    OP_KINDS,
    TARGETS,
    Outcome,
    Target,
    _dicom,
    run_one,
    scratch_target,
)

#: Inputs per target in CI (derandomized, so every run tries the same ones).
EXAMPLES = 250

#: (target, exception type, radiolens file) of crashes found and reported, not yet fixed.
KNOWN_CRASHES: set[tuple[str, str, str]] = set()


def _known(name: str, outcome: Outcome) -> bool:
    kind, _, where = outcome.signature.partition(" at ")
    return (name, kind, where.split(":")[0]) in KNOWN_CRASHES


@pytest.fixture(scope="module")
def targets() -> Iterator[dict[str, Target]]:
    made: dict[str, Target] = {}
    stack = []
    for name in TARGETS:
        cm = scratch_target(name)
        made[name] = cm.__enter__()
        stack.append(cm)
    yield made
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    logging.disable(logging.WARNING)  # the readers log every refused row
    yield
    logging.disable(logging.NOTSET)


def _ops(tokens: tuple[bytes, ...]) -> st.SearchStrategy[list[tuple[str, float, bytes]]]:
    payload = st.one_of(st.sampled_from(tokens), st.binary(min_size=1, max_size=16))
    op = st.tuples(st.sampled_from(OP_KINDS), st.floats(0, 1, exclude_max=True), payload)
    return st.lists(op, min_size=1, max_size=6)


@pytest.mark.filterwarnings("ignore")  # pydicom and Pillow warn about broken inputs
@pytest.mark.parametrize("name", TARGETS)
def test_hostile_inputs_give_a_result_or_a_radiolens_error(
        name: str, targets: dict[str, Target]) -> None:
    target = targets[name]

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(seed_index=st.integers(0, len(target.seeds) - 1), edits=_ops(target.tokens),
           raw=st.none() | st.binary(max_size=512))
    def check(seed_index: int, edits: list[tuple[str, float, bytes]], raw: bytes | None
              ) -> None:
        data = raw if raw is not None else target.input(seed_index, edits)
        outcome = run_one(target, data, seed_index)
        assert outcome.kind != "hang", f"{name}: input ran past {target.limit_s} s"
        if outcome.kind == "crash" and not _known(name, outcome):
            assert outcome.error is not None
            raise outcome.error

    check()


# -- regressions: one per crash found (xfail until the reader is fixed) ----------------


def _unknown_vr_dicom() -> bytes:
    seed = _dicom()
    i = seed.index(b"\x10\x00\x20\x00LO")  # (0010,0020) Patient ID, explicit VR "LO"
    return seed[:i] + b"\x10\x00\x20\x00L0" + seed[i + 6:]


def _seed_with(old: bytes, new: bytes) -> bytes:
    seed = _dicom()
    assert seed.count(old) >= 1
    return seed.replace(old, new, 1)


_ROWS = b"\x28\x00\x10\x00US\x02\x00"  # (0028,0010) Rows, explicit VR US, 2 bytes


def _odd_length_rows() -> bytes:
    seed = _dicom()
    i = seed.index(_ROWS)
    return seed[:i] + _ROWS[:6] + b"\x03\x00" + seed[i + 8:i + 10] + b"\x00" + seed[i + 10:]


REGRESSIONS = [
    # ingest_dataset: a VR pydicom does not know in Patient ID (NotImplementedError from
    # instance_meta, outside the try that refuses undecodable datasets; upload gave 500)
    pytest.param("dicom-ingest", _unknown_vr_dicom(), id="dicom-unknown-vr-in-patient-id"),
    # reports.readers._parse_openi: an unknown XML encoding raised LookupError
    pytest.param("reports-xml", b'<?xml version="1.0" encoding="utf-m"?><a/>',
                 id="openi-unknown-xml-encoding"),
    # data.tables.ItemCollector.add: Path.is_file() raised OSError ENAMETOOLONG
    pytest.param("tables", b"image,patient_id,pneumonia\n" + b"a" * 300 + b".png,p1,1\n",
                 id="table-image-name-too-long"),
    # imaging.dicom.dicom_meta: an unknown VR in SOP Instance UID (NotImplementedError)
    pytest.param("image", _seed_with(b"\x08\x00\x18\x00UI", b"\x08\x00\x18\x00LI"),
                 id="dicom-unknown-vr-in-sop-uid"),
    # imaging.dicom._check_size_first / checks.check_radiograph: an unknown VR in Rows
    pytest.param("image", _seed_with(_ROWS, b"\x28\x00\x10\x00U1\x02\x00"),
                 id="dicom-unknown-vr-in-rows"),
    # imaging.dicom._check_size_first: a 3-byte US Rows (pydicom BytesLengthException)
    pytest.param("image", _odd_length_rows(), id="dicom-rows-odd-length"),
    # imaging.dicom._check_supported: UID.is_compressed on a Transfer Syntax UID that is
    # not a transfer syntax (ValueError), or holds a backslash (MultiValue: AttributeError)
    pytest.param("image", _seed_with(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.5.1.4\x00"),
                 id="dicom-transfer-syntax-not-a-transfer-syntax"),
    pytest.param("image", _seed_with(b"1.2.840.10008.1.2.1\x00", b"1.2\\840.10008.1.2.1\x00"),
                 id="dicom-transfer-syntax-multivalued"),
]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("name", "data"), REGRESSIONS)
def test_crash_found_by_fuzzing(name: str, data: bytes, targets: dict[str, Target]) -> None:
    outcome = run_one(targets[name], data, 4 if name == "image" else 0)  # image: a .dcm name
    assert outcome.kind in ("ok", "rejected"), f"{outcome.signature}: {outcome.error!r}"
