"""The dev server against `openapi/mfo-api.yaml`: schemathesis generates requests from the
contract (valid and invalid) and checks status codes, headers and bodies against it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import settings

from tests._servers import run_devserver
from tests.devserver.conftest import TOKEN
from tests.devserver.conftest import settings as server_settings

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "mfo-api.yaml"

schema = schemathesis.openapi.from_path(SPEC).include(path_regex=r"^/(api|auth)/")


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    with run_devserver(server_settings(job_duration=0.05)) as url:
        yield url


def _make_sendable(case: Any) -> None:
    """Keep valid requests valid in ways a JSON Schema cannot say.

    A cursor is valid only if the server issued it, and an idempotency key drawn twice (say
    "0") with two different bodies is rightly refused; neither is a contract violation.
    """
    if not case.meta.generation.mode.is_positive:
        return
    if case.query and "cursor" in case.query:
        del case.query["cursor"]
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and 1 <= len(key) <= 255:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
)
def test_server_honours_the_contract(case: Any, live_url: str) -> None:
    _make_sendable(case)
    case.call_and_validate(base_url=live_url, headers={"Authorization": f"Bearer {TOKEN}"})


def test_linked_operations_honour_the_contract(live_url: str) -> None:
    """Follow the spec's links (create, then read or cancel what was created)."""

    class LinkedCalls(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            _make_sendable(case)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": live_url, "headers": {"Authorization": f"Bearer {TOKEN}"}}

    LinkedCalls.run(settings=settings(max_examples=30, stateful_step_count=6, deadline=None))
