from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from radiolens import DISCLAIMER
from radiolens.drafts import (
    FindingScore,
    StudyResult,
    draft_report,
    make_oru,
    mllp_frame,
    mllp_unframe,
    parse_oru,
    send_mllp,
)
from radiolens.errors import DicomSendError, DraftError

from .conftest import STUDY_UID, make_result

CREATED = datetime(2024, 1, 2, 11, 0, tzinfo=UTC)


def _oru(result: StudyResult, control_id: str = "MSG0001") -> str:
    return make_oru(result, draft_report(result), control_id=control_id, created_at=CREATED)


def test_oru_parses_back(mixed_result: StudyResult) -> None:
    msg = _oru(mixed_result)
    assert "\n" not in msg and msg.count("\r") >= 4
    m = parse_oru(msg)
    assert m.msh.msh_9.to_er7() == "ORU^R01^ORU_R01"
    assert m.msh.msh_10.to_er7() == "MSG0001"
    assert m.msh.msh_3.to_er7() == "RADIOLENS" and m.msh.msh_5.to_er7() == "RIS"
    pr = m.oru_r01_patient_result
    assert pr.oru_r01_patient.pid.pid_3.to_er7().startswith("P001")
    assert pr.oru_r01_patient.pid.pid_5.to_er7() == "Doe^Jane"
    oo = pr.oru_r01_order_observation
    assert oo.obr.obr_25.to_er7() == "P"
    assert oo.obr.obr_3.to_er7() == "ACC001"
    assert oo.obr.obr_19.to_er7() == STUDY_UID
    obxs = [g.obx for g in oo.oru_r01_observation]
    assert all(o.obx_11.to_er7() == "P" for o in obxs)
    numeric = [o for o in obxs if o.obx_2.to_er7() == "NM"]
    assert len(numeric) == len(mixed_result.findings)
    values = {o.obx_3.to_er7().split("^")[0]: o for o in numeric}
    assert float(values["PNEUMONIA"].obx_5.to_er7()) == pytest.approx(0.87)
    assert values["PNEUMONIA"].obx_8.to_er7() == "A"
    assert values["EFFUSION"].obx_8.to_er7() == "N"
    text = [o.obx_5.to_er7() for o in obxs if o.obx_2.to_er7() == "TX"]
    assert DISCLAIMER in text
    assert any(t.startswith("Possible pneumothorax") for t in text)
    assert [o.obx_1.to_er7() for o in obxs] == [str(i) for i in range(1, len(obxs) + 1)]


def test_oru_is_reproducible_and_escapes_delimiters() -> None:
    r = make_result(FindingScore("Pneumonia", 0.9, 0.5, True), accession_number="A|B^C",
                    patient_id="P&1")
    assert _oru(r) == _oru(r)
    msg = _oru(r)
    assert "A\\F\\B\\S\\C" in msg and "P\\T\\1" in msg
    m = parse_oru(msg)
    assert len(m.oru_r01_patient_result.oru_r01_order_observation.oru_r01_observation) > 2


@pytest.mark.parametrize("overrides", [
    {},
    {"accession_number": "A|B^C", "patient_id": "P&1~2\\x"},
    {"accession_number": "", "patient_name": "", "patient_sex": "X",
     "patient_birth_date": "0000", "study_date": "20261399"},
    {"patient_name": "Müller^Jürgen^^Dr^III=ミュラー", "patient_sex": "m"},
])
def test_oru_passes_strict_hl7apy_validation(overrides: dict[str, str]) -> None:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    names = ["Atelectasis", "Effusion", "Pneumonia", "Pneumothorax", "Hernia", "covid",
             "abnormal", "pneumonia"]
    r = make_result(*[FindingScore(n, i / 10, 0.5, i % 2 == 0) for i, n in enumerate(names)],
                    **overrides)
    msg = make_oru(r, draft_report(r), control_id="C1", created_at=CREATED,
                   sending_facility="H~1", receiving_facility="R&D")
    m = parse_message(msg, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert m.validate()
    assert m.to_er7() == msg  # hl7apy writes back exactly what was built
    oo = m.oru_r01_patient_result.oru_r01_order_observation
    assert len(oo.oru_r01_observation) == 1 + len(names) + len(
        draft_report(r).full_text.splitlines())


def test_oru_rejects_bad_control_id(mixed_result: StudyResult) -> None:
    with pytest.raises(DraftError, match="control_id"):
        _oru(mixed_result, control_id="X" * 21)


def test_mllp_frame_roundtrip() -> None:
    framed = mllp_frame(b"MSH|x")
    assert framed == b"\x0bMSH|x\x1c\r"
    assert mllp_unframe(framed) == b"MSH|x"
    with pytest.raises(DraftError):
        mllp_frame(b"\x0bMSH")


def _ack(code: str, control_id: str, text: str = "") -> bytes:
    segs = ["MSH|^~\\&|RIS||RADIOLENS||20240102110001||ACK^R01^ACK|ACK1|P|2.5",
            f"MSA|{code}|{control_id}|{text}"]
    return mllp_frame("\r".join(segs).encode())


class _Listener:
    """A one-thread MLLP listener on a free port that answers with a canned ACK."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.received = b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            while b"\x1c\r" not in self.received:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                self.received += chunk
            if self.reply is None:  # stay silent until the client gives up
                conn.recv(1)
                return
            conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=10)


@pytest.fixture()
def listener_factory() -> Iterator[type[_Listener]]:
    made: list[_Listener] = []

    class Factory(_Listener):
        def __init__(self, reply: bytes | None) -> None:
            super().__init__(reply)
            made.append(self)

    yield Factory
    for lst in made:
        lst.close()


def test_send_mllp_returns_ack(mixed_result: StudyResult,
                               listener_factory: type[_Listener]) -> None:
    msg = _oru(mixed_result)
    lst = listener_factory(_ack("AA", "MSG0001"))
    ack = send_mllp(msg, "127.0.0.1", lst.port, timeout=5)
    assert "MSA|AA|MSG0001" in ack
    assert mllp_unframe(lst.received).decode("utf-8") == msg


def test_send_mllp_application_error_raises(mixed_result: StudyResult,
                                            listener_factory: type[_Listener]) -> None:
    lst = listener_factory(_ack("AE", "MSG0001", "unknown patient"))
    with pytest.raises(DicomSendError, match=r"rejected .* with AE: unknown patient"):
        send_mllp(_oru(mixed_result), "127.0.0.1", lst.port, timeout=5)


def test_send_mllp_ack_for_another_message_raises(mixed_result: StudyResult,
                                                  listener_factory: type[_Listener]) -> None:
    lst = listener_factory(_ack("AA", "OTHER"))
    with pytest.raises(DicomSendError, match="acknowledged message 'OTHER'"):
        send_mllp(_oru(mixed_result), "127.0.0.1", lst.port, timeout=5)


def test_send_mllp_timeout_raises(mixed_result: StudyResult,
                                  listener_factory: type[_Listener]) -> None:
    lst = listener_factory(None)
    with pytest.raises(DicomSendError, match="no ACK"):
        send_mllp(_oru(mixed_result), "127.0.0.1", lst.port, timeout=0.5)


def test_send_mllp_connection_refused(mixed_result: StudyResult) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nothing listens on the port now
    with pytest.raises(DicomSendError, match="refused"):
        send_mllp(_oru(mixed_result), "127.0.0.1", port, timeout=2)
    assert issubclass(DicomSendError, ConnectionError)


def test_oru_without_patient_name_is_valid(mixed_result: StudyResult) -> None:
    """Images often carry no patient name; the ORU must still be a valid message."""
    import dataclasses

    result = dataclasses.replace(mixed_result, patient_name="")
    msg = parse_oru(_oru(result))
    assert msg.oru_r01_patient_result.oru_r01_patient.pid.pid_5.to_er7() == "UNKNOWN"
