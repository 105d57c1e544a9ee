"""Read DICOM data element values so that a corrupt element is a radiolens error.

pydicom decodes an element's value only when it is first read, so a corrupt element (a
VR pydicom does not know, a length that is not a whole number of values, a value its VR
cannot hold) raises ``NotImplementedError``, ``BytesLengthException``, ``ValueError``,
... from wherever the value happens to be read. Every header read in the image reader,
the radiograph check and the ingest path goes through :func:`element_value`, which
raises :class:`~radiolens.errors.DicomElementError` naming the element instead; each
boundary translates that once (to :class:`~radiolens.errors.ImageReadError` naming the
file, or to :class:`~radiolens.errors.InstanceRefused` with status 0xC210).

This module imports pydicom only when a value fails to decode (it is a leaf that
:mod:`radiolens.imaging.checks` can use without pydicom at import time).
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from radiolens.errors import DicomElementError

__all__ = ["element_value", "transfer_syntax_uid"]


@functools.cache
def _decode_errors() -> tuple[type[BaseException], ...]:
    """What pydicom raises while decoding one value lazily."""
    from pydicom.errors import BytesLengthException

    return (NotImplementedError, BytesLengthException, ValueError, LookupError, TypeError,
            AttributeError, ArithmeticError, struct.error)


def _tag_text(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword
    from pydicom.tag import Tag

    tag = tag_for_keyword(keyword)
    return str(Tag(tag)) if tag is not None else ""


def element_value(ds: Any, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword, default)``, raising :class:`DicomElementError` if it cannot decode.

    Args:
        ds: a pydicom dataset (or file meta dataset).
        keyword: the element's keyword (``"Rows"``).
        default: returned when the element is absent.

    Returns:
        The element's value (``None`` for a present but empty element, as pydicom).

    Raises:
        DicomElementError: the element is present but its value cannot be decoded.

    Example:
        >>> element_value(ds, "Rows")  # doctest: +SKIP
        2048
    """
    try:
        return ds.get(keyword, default)
    except _decode_errors() as exc:
        raise DicomElementError(keyword, _tag_text(keyword),
                                f"{type(exc).__name__}: {exc}"[:200]) from exc


def transfer_syntax_uid(ds: Any) -> Any:
    """The file meta Transfer Syntax UID of ``ds`` as a pydicom ``UID``, or ``None``.

    Raises:
        DicomElementError: the element cannot be decoded, holds several values, or
            names a UID that is not a transfer syntax pydicom knows.
    """
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is None:
        return None
    value = element_value(file_meta, "TransferSyntaxUID")
    if value is None or not str(value).strip():
        return None
    from pydicom.uid import UID

    if not isinstance(value, str):  # a MultiValue: the UID held a backslash
        raise DicomElementError("TransferSyntaxUID", _tag_text("TransferSyntaxUID"),
                                f"{len(value)} values, expected one UID")
    uid = value if isinstance(value, UID) else UID(value)
    if not uid.is_transfer_syntax:
        raise DicomElementError("TransferSyntaxUID", _tag_text("TransferSyntaxUID"),
                                f"{str(uid)[:64]!r} is not a transfer syntax pydicom knows")
    return uid
