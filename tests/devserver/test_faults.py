"""`/_admin/faults`: injected failures and latency, limited by count and routes."""

from __future__ import annotations

import time

import httpx
import pytest

from tests._servers import run_devserver
from tests.devserver.conftest import TOKEN, error_code, settings


def _set(anon: httpx.Client, **fault: object) -> httpx.Response:
    response = anon.post("/_admin/faults", json=fault)
    assert response.status_code == 200, response.text
    return response


def test_count_limits_the_fault_then_it_clears_itself(
    api: httpx.Client, anon: httpx.Client
) -> None:
    _set(anon, status=503, count=2)
    statuses = [api.get("/api/events").status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert anon.get("/_admin/faults").json() == {"fault": None}


def test_injected_failure_has_the_error_shape(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, status=429, retry_after=7)
    response = api.post("/api/events", json={"type": "t", "payload": 1})
    assert response.status_code == 429
    assert error_code(response) == "injected_fault"
    assert response.headers["Retry-After"] == "7"
    assert "X-Request-ID" in response.headers


def test_no_retry_after_unless_asked(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, status=500)
    response = api.get("/api/events")
    assert response.status_code == 500
    assert "Retry-After" not in response.headers


def test_fail_rate_alone_defaults_to_503(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, fail_rate=1.0)
    assert api.get("/api/events").status_code == 503


def test_fail_rate_zero_never_fails(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, fail_rate=0.0, status=503)
    assert all(api.get("/api/events").status_code == 200 for _ in range(10))


def test_partial_fail_rate_fails_some(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, fail_rate=0.5)
    statuses = {api.get("/api/events").status_code for _ in range(60)}
    assert statuses == {200, 503}  # chance of a false failure: 2 * 0.5**60


def test_routes_restrict_the_fault_to_templates(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, status=503, routes=["GET /api/jobs/{id}"])
    job = api.post("/api/jobs", json={"type": "t"})
    assert job.status_code == 201
    assert api.get(f"/api/jobs/{job.json()['id']}").status_code == 503
    assert api.get("/api/events").status_code == 200


def test_count_only_counts_matching_requests(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, status=503, count=1, routes=["POST /api/events"])
    assert api.get("/api/events").status_code == 200
    assert api.post("/api/events", json={"type": "t", "payload": 1}).status_code == 503
    assert api.post("/api/events", json={"type": "t", "payload": 1}).status_code == 202


def test_unknown_route_template_is_refused_with_the_valid_ones(anon: httpx.Client) -> None:
    response = anon.post("/_admin/faults", json={"routes": ["POST /api/event"]})
    assert response.status_code == 422
    assert "POST /api/events" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "fault",
    [{"fail_rate": 1.5}, {"status": 200}, {"latency_ms": -1}, {"count": 0}, {"colour": "red"}],
)
def test_invalid_fault_is_refused(anon: httpx.Client, fault: dict[str, object]) -> None:
    response = anon.post("/_admin/faults", json=fault)
    assert response.status_code == 422
    assert error_code(response) == "validation_error"


def test_latency_delays_successful_requests(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, latency_ms=200)
    started = time.monotonic()
    response = api.get("/api/events")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


def test_faults_never_touch_admin_or_unauthenticated_requests(anon: httpx.Client) -> None:
    _set(anon, status=503, latency_ms=300)
    started = time.monotonic()
    assert anon.get("/_admin/faults").status_code == 200
    assert anon.get("/_admin/stats").status_code == 200
    assert time.monotonic() - started < 0.3
    assert anon.get("/api/events").status_code == 401
    assert anon.delete("/_admin/faults").json() == {"fault": None}


def test_current_fault_shows_what_is_left(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, status=502, count=3, routes=["GET /api/events"])
    api.get("/api/events")
    fault = anon.get("/_admin/faults").json()["fault"]
    assert fault["status"] == 502
    assert fault["count"] == 2
    assert fault["routes"] == ["GET /api/events"]


def test_a_new_fault_replaces_the_old(api: httpx.Client, anon: httpx.Client) -> None:
    _set(anon, status=503)
    _set(anon, status=504)
    assert api.get("/api/events").status_code == 504


def test_faults_can_be_active_from_the_start() -> None:
    from mfo_client.devserver import FaultSpec

    with run_devserver(settings(faults=FaultSpec(status=503, count=1))) as url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{url}/api/events", headers=headers).status_code == 503
        assert httpx.get(f"{url}/api/events", headers=headers).status_code == 200
