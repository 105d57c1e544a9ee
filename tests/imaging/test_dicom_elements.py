"""DICOM elements that pydicom cannot decode are ImageReadError / a refusal, never a crash.

pydicom decodes a value when it is first read; every header read goes through
:func:`radiolens.imaging.elements.element_value`, and the boundaries name the element.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from radiolens.errors import ImageReadError
from radiolens.imaging import read_image
from radiolens.imaging.elements import element_value, transfer_syntax_uid
from tests.fuzz.targets import _dicom

_TS = b"1.2.840.10008.1.2.1\x00"


def _edited(old: bytes, new: bytes) -> bytes:
    seed = _dicom()
    assert seed.count(old) >= 1
    return seed.replace(old, new, 1)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("data", "named"), [
    (_edited(b"\x08\x00\x18\x00UI", b"\x08\x00\x18\x00LI"), "SOPInstanceUID (0008,0018)"),
    (_edited(b"\x28\x00\x10\x00US", b"\x28\x00\x10\x00U1"), "Rows (0028,0010)"),
    (_edited(b"\x28\x00\x11\x00US", b"\x28\x00\x11\x00U1"), "Columns (0028,0011)"),
    (_edited(b"\x28\x00\x00\x01US", b"\x28\x00\x00\x01U1"), "BitsAllocated (0028,0100)"),
    (_edited(b"\x28\x00\x04\x00CS", b"\x28\x00\x04\x00C0"),
     "PhotometricInterpretation (0028,0004)"),
    (_edited(b"\xe0\x7f\x10\x00OW", b"\xe0\x7f\x10\x00UW"), "PixelData (7FE0,0010)"),
    (_edited(_TS, b"1.2.840.10008.5.1.4\x00"), "TransferSyntaxUID (0002,0010)"),
    (_edited(_TS, b"1.2\\840.10008.1.2.1\x00"), "TransferSyntaxUID (0002,0010)"),
], ids=["sop-uid-vr", "rows-vr", "columns-vr", "bits-vr", "photometric-vr", "pixel-data-vr",
        "ts-not-a-ts", "ts-multivalued"])
def test_undecodable_element_is_an_image_read_error_naming_file_and_element(
        tmp_path: Path, data: bytes, named: str) -> None:
    path = tmp_path / "bad.dcm"
    path.write_bytes(data)
    expected = rf"bad\.dcm: DICOM element {re.escape(named)} cannot be decoded .*re-send it"
    with pytest.raises(ImageReadError, match=expected):
        read_image(path)


@pytest.mark.filterwarnings("ignore")
def test_rows_of_odd_length_is_an_image_read_error(tmp_path: Path) -> None:
    seed = _dicom()
    rows = b"\x28\x00\x10\x00US\x02\x00"
    i = seed.index(rows)
    path = tmp_path / "odd.dcm"
    path.write_bytes(seed[:i] + rows[:6] + b"\x03\x00" + seed[i + 8:i + 10] + b"\x00"
                     + seed[i + 10:])
    with pytest.raises(ImageReadError, match=r"odd\.dcm: DICOM element Rows \(0028,0010\) "
                                             r"cannot be decoded \(BytesLengthException"):
        read_image(path)


def test_element_value_passes_values_and_defaults_through() -> None:
    from pydicom import Dataset

    ds = Dataset()
    ds.Rows = 12
    assert element_value(ds, "Rows") == 12
    assert element_value(ds, "Columns", 7) == 7
    assert transfer_syntax_uid(ds) is None
