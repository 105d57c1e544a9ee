"""Log records stay one bounded line and carry no person names or identifiers."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from pydicom import Dataset
from pydicom.valuerep import PersonName

from radiolens.logsafe import (
    SafeLogFilter,
    escape_control,
    install_log_filter,
    relative_to,
    scrub_paths,
)


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    install_log_filter(handler)
    parent = logging.getLogger("radiolens-test-logsafe")
    parent.handlers[:] = [handler]
    parent.setLevel(logging.DEBUG)
    parent.propagate = False
    yield parent.getChild("child"), stream  # records propagate from a child logger
    parent.handlers[:] = []


def test_a_newline_cannot_forge_a_line(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    logger.warning("refused instance %s from %s", "1.2.3\nCRITICAL forged", "AE\x1b[31m@h")
    lines = stream.getvalue().splitlines()
    assert lines == ["WARNING refused instance 1.2.3\\nCRITICAL forged from AE\\x1b[31m@h"]


def test_long_values_are_cut(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    logger.info("stored %s", "1." * 50_000)
    line = stream.getvalue().rstrip("\n")
    assert len(line) < 300 and line.endswith("...[99800 chars cut]")
    logger.info("x" * 10_000)
    assert len(stream.getvalue().splitlines()[1]) < 2100


def test_person_names_and_identity_elements_are_dropped(
        log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-12345"
    logger.info("name %s id %s elem %s ds %s n %d", ds.PatientName, ds["PatientID"],
                ds["PatientName"], ds, 7)
    out = stream.getvalue()
    assert "Doe" not in out and "MRN-12345" not in out
    assert out.count("<redacted>") == 4 and "n 7" in out
    logger.info("%s", PersonName("Roe^Richard"))
    assert "Roe" not in stream.getvalue()


def test_install_is_idempotent_and_reaches_a_loggers_handlers() -> None:
    logger = logging.getLogger("radiolens-test-install")
    handler = logging.NullHandler()
    logger.handlers[:] = [handler]
    first = install_log_filter(logger)
    assert install_log_filter(logger) is first
    assert sum(isinstance(f, SafeLogFilter) for f in handler.filters) == 1
    logger.handlers[:] = []


def test_bad_format_strings_are_left_to_logging() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None)
    assert SafeLogFilter().filter(record) is True
    assert record.args == ("not a number",)


def test_paths_shown_relative_to_the_data_dir() -> None:
    assert escape_control("a\u202eb") == "a\\u202eb"
    assert relative_to("/srv/rl/dicom/1/2.dcm", "/srv/rl") == "dicom/1/2.dcm"
    assert relative_to("/elsewhere/2.dcm", "/srv/rl") == "2.dcm"
    assert scrub_paths("/srv/rl/dicom/1/2.dcm: cannot decode", "/srv/rl") == \
        "dicom/1/2.dcm: cannot decode"
