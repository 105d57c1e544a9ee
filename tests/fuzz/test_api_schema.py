"""Schemathesis over the triage API's OpenAPI schema: no request answers 5xx.

The app is built as in ``tests/serve/conftest.py`` (a token, a temporary worklist with a
scored, an urgent and a waiting study); every generated request carries the token, so
the routes behind authentication are exercised too. The number of examples per
operation is bounded for CI time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from tests.serve.conftest import TOKEN, make_world  # noqa: E402

#: Examples per API operation (CI time).
EXAMPLES = 15
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api_schema(tmp_path: Path) -> Iterator[object]:
    from radiolens.serve import create_app

    world = make_world(tmp_path / "data")
    app = create_app(world.data_dir, world.engine, TOKEN, model_name="test-model",
                     dicom_port=11112)
    yield schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)  # behind login
    world.engine.dispose()


@pytest.mark.filterwarnings("ignore")  # pydicom warns about the generated "files"
def test_no_request_answers_a_server_error(api_schema: object) -> None:
    # One Hypothesis run per operation, from the operation's strategy (schemathesis's
    # lazy ``from_fixture`` does not run under pytest 9: it sets ``node._nodeid``).
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[attr-defined]
    assert len(operations) >= 10
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: object) -> None:
            response = case.call_and_validate(  # type: ignore[attr-defined]
                headers=AUTH, checks=[not_a_server_error])
            statuses[response.status_code] += 1

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            first = str(exc).strip().splitlines()
            failures.append(f"{operation.method.upper()} {operation.path}: "
                            f"{type(exc).__name__}: {' | '.join(first[:6])}")
    assert not failures, "server errors:\n" + "\n".join(failures)
    # the token was accepted: most answers are not 401, and some are 200
    assert statuses[200] > 0 and statuses[401] < sum(statuses.values()) / 2, statuses


@pytest.mark.filterwarnings("ignore")
def test_upload_of_dicom_with_unknown_vr_is_not_a_server_error(api_schema: object) -> None:
    from fastapi.testclient import TestClient

    from tests.fuzz.test_fuzz_targets import _unknown_vr_dicom

    app = api_schema.app  # type: ignore[attr-defined]
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
        response = client.post("/api/upload",
                               files={"files": ("x.dcm", _unknown_vr_dicom(), "application/dicom")})
    assert response.status_code < 500, response.text
    if response.status_code == 200:  # a refusal, not a stored study
        assert [f["status"] for f in response.json()["files"]] == ["refused"], response.text
