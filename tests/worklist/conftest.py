"""Worklist fixtures: a fresh database per test (SQLite, or PostgreSQL) and a helper.

Tests take ``engine`` (or ``db_url``) and run on SQLite. To run one on PostgreSQL too,
parametrize the ``backend`` fixture indirectly, e.g. with :data:`both_backends`.

PostgreSQL comes from ``RADIOLENS_TEST_PG_URL`` when set; otherwise ``pg_url`` starts a
throwaway cluster from the PostgreSQL server binaries (``apt-get install postgresql``)
for the session, and each test module gets its own database in it.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from radiolens.worklist import Base, Study, open_worklist, record_instance

#: Parametrize a test taking ``engine``/``db_url`` over both database backends.
both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin_dir() -> Path | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None

    def major(initdb: str) -> int:  # /usr/lib/postgresql/<major>/bin/initdb
        version = Path(initdb).parts[-3]
        return int(version) if version.isdigit() else 0

    return Path(max(found, key=major)).parent  # the newest when several are installed


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL server URL (superuser, database ``postgres``) for the whole session."""
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg is not installed: pip install 'psycopg[binary]>=3.1'")
    env_url = os.environ.get("RADIOLENS_TEST_PG_URL")
    if env_url:
        yield env_url
        return
    bin_dir = _pg_bin_dir()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        pytest.skip(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql) and RADIOLENS_TEST_PG_URL is not set"
        )
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="radiolens-pg-"))  # short: socket paths are limited
    data, sock_dir, log = base / "data", base / "sock", base / "server.log"
    sock_dir.mkdir()
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        try:
            if shutil.which("runuser") is None:
                raise LookupError("runuser")
            for path in (base, sock_dir):
                shutil.chown(path, user="postgres", group="postgres")
        except LookupError:
            shutil.rmtree(base)
            pytest.skip("running as root, and no 'postgres' user or runuser to run PostgreSQL")
        prefix = ["runuser", "-u", "postgres", "--"]
    initdb = _run(
        [
            *prefix,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        cwd=base,
    )
    if initdb.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
    pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    for _ in range(3):  # another process may take the free port before the server does
        port = _free_port()
        options = (
            f"-p {port} -k {sock_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        start = _run([*pg_ctl, "-l", str(log), "-w", "-t", "60", "-o", options, "start"], cwd=base)
        if start.returncode == 0:
            break
    else:
        server_log = log.read_text(errors="replace") if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{server_log}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _run([*pg_ctl, "-w", "-m", "fast", "stop"], cwd=base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_database(pg_url: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database for this test module (dropped after)."""
    name = f"radiolens_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of a test: ``sqlite`` unless parametrized (indirect)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of an empty worklist database (no tables yet) for one test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'worklist.db'}"
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    url: str = request.getfixturevalue("pg_database")
    eng = create_engine(url)
    try:
        Base.metadata.drop_all(eng)  # what the previous test of the module left
    finally:
        eng.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = open_worklist(db_url)
    yield eng
    eng.dispose()


def add_instance(
    engine: Engine | Session, study: str, sop: str, patient: str = "P1"
) -> tuple[Study, bool]:
    """Record one instance of ``study`` (UIDs given as short suffixes)."""
    meta = {
        "sop_instance_uid": f"1.2.3.{sop}",
        "study_instance_uid": f"1.2.{study}",
        "series_instance_uid": f"1.2.{study}.1",
        "patient_id": patient,
        "study_date": "20240102",
        "modality": "DX",
    }
    return record_instance(engine, meta=meta, path=f"dicom/1.2.{study}/1.2.3.{sop}.dcm", size=100)
