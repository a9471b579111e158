"""Every error class, produced by the real server (fault injection), never by a mock."""

from __future__ import annotations

import pytest

from mfo_client import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    MFOClient,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
)
from mfo_client.api import CircuitBreakerRegistry, RetryPolicy, status_error_class
from tests._servers import free_port
from tests.api.conftest import TOKEN, Attempts, Server

ONE_TRY = RetryPolicy(max_attempts=1)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (418, APIError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_each_status_maps_to_its_error_class(
    server: Server, breakers: CircuitBreakerRegistry, status: int, cls: type[APIError]
) -> None:
    assert status_error_class(status) is cls
    server.faults(status=status, count=1)
    with MFOClient(server.api, auth=TOKEN, retry=ONE_TRY, breakers=breakers) as mfo:
        with pytest.raises(cls) as info:
            mfo.resources.create("doc", "x")
    error = info.value
    assert type(error) is cls
    assert error.status == status
    assert error.code == "injected_fault"
    assert error.request_id  # the server's X-Request-ID
    assert isinstance(error.body, dict) and error.body["error"]["code"] == "injected_fault"
    assert error.method == "POST" and error.url == f"{server.api}/resources"


def test_real_not_found_conflict_and_validation_errors(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    with MFOClient(server.api, auth=TOKEN, breakers=breakers) as mfo:
        with pytest.raises(NotFoundError) as missing:
            mfo.resources.get("no-such-resource")
        assert missing.value.code == "not_found"
        job = mfo.jobs.create("j", {"fail": True})
        mfo.jobs.wait(job.id, timeout=10)
        with pytest.raises(ConflictError):
            mfo.jobs.cancel(job.id)  # already final
        with pytest.raises(UnprocessableEntityError) as invalid:
            mfo.resources.list(limit=5000)
        assert "limit" in invalid.value.message


def test_wrong_token_is_an_authentication_error_and_not_retried(
    server: Server, breakers: CircuitBreakerRegistry, attempts: Attempts
) -> None:
    with MFOClient(server.api, auth="wrong", breakers=breakers, hooks=[attempts]) as mfo:
        with pytest.raises(AuthenticationError) as info:
            mfo.events.send_event({"type": "t", "payload": None})
    assert info.value.code == "unauthorized"
    assert len(attempts) == 1


def test_refused_connection_is_an_api_connection_error_after_all_attempts(
    breakers: CircuitBreakerRegistry, attempts: Attempts
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    with MFOClient(url, auth=TOKEN, breakers=breakers, hooks=[attempts]) as mfo:
        with pytest.raises(APIConnectionError) as info:
            mfo.events.send_event({"type": "t", "payload": 1})
    assert not isinstance(info.value, APITimeoutError)
    assert info.value.url == f"{url}/events"
    assert [a.error for a in attempts] == ["ConnectError"] * 3


def test_slow_server_is_a_timeout_error(server: Server, breakers: CircuitBreakerRegistry) -> None:
    server.faults(latency_ms=600, fail_rate=0.0)
    with MFOClient(server.api, auth=TOKEN, timeout=0.15, retry=ONE_TRY, breakers=breakers) as mfo:
        with pytest.raises(APITimeoutError):
            mfo.resources.list()


def test_no_bare_httpx_exception_escapes_for_a_non_json_error_body(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    # A path the server does not route answers 404; the error still carries what was said.
    with MFOClient(f"{server.url}/nowhere", auth=TOKEN, breakers=breakers) as mfo:
        with pytest.raises(NotFoundError) as info:
            mfo.resources.list()
    assert info.value.status == 404
