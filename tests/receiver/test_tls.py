"""DICOM over TLS: the receiver with a self-signed certificate made in the test."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from pynetdicom import AE
from sqlalchemy import Engine

from radiolens.errors import ConfigError
from radiolens.receiver import DicomReceiver
from radiolens.worklist import list_studies

from ..dicomnet.synthetic import DX, free_port, make_dataset

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return crt, key


def _client() -> AE:
    ae = AE(ae_title="TLS-SCU")
    ae.add_requested_context(DX)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    return ae


def test_store_over_tls(tmp_path: Path, engine: Engine, cert: tuple[Path, Path]) -> None:
    crt, key = cert
    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port(),
                        tls_cert=crt, tls_key=key)
    with scp:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(crt))
        assoc = _client().associate("127.0.0.1", scp.port, ae_title=scp.ae_title,
                                    tls_args=(context, "localhost"))
        assert assoc.is_established
        status = assoc.send_c_store(make_dataset(seed="tls"))
        assoc.release()
        assert int(status.Status) == 0x0000
        # a client speaking plain DICOM to the TLS port gets no association
        plain = _client().associate("127.0.0.1", scp.port, ae_title=scp.ae_title)
        assert not plain.is_established
    assert len(list_studies(engine)) == 1


def test_tls_needs_cert_and_key(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="both tls_cert and tls_key"):
        DicomReceiver(tmp_path, tls_cert=cert[0])
    scp = DicomReceiver(tmp_path / "data", host="127.0.0.1", port=free_port(),
                        tls_cert=cert[0], tls_key=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="cannot load the DICOM TLS"):
        scp.start()
    assert not scp.running
