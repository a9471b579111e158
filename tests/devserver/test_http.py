"""What every response shares: JSON errors, request ids, body limits, 404/405, malformed JSON."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mfo_client.devserver._store import Store
from tests.devserver.conftest import error_code


def test_request_id_is_echoed(api: httpx.Client) -> None:
    response = api.get("/api/events", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


def test_request_id_is_generated_when_absent_or_unusable(api: httpx.Client) -> None:
    first = api.get("/api/events").headers["X-Request-ID"]
    second = api.get("/api/events", headers={"X-Request-ID": "x" * 201}).headers["X-Request-ID"]
    assert first and second and first != second and len(second) < 201


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz"), ("GET", "/nowhere"), ("POST", "/api/events"), ("GET", "/_admin/stats")],
)
def test_every_response_has_a_request_id(api: httpx.Client, method: str, path: str) -> None:
    assert api.request(method, path, content=b"{").headers["X-Request-ID"]


def test_malformed_json_is_400(api: httpx.Client) -> None:
    response = api.post(
        "/api/resources", content=b'{"type": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_code(response) == "bad_request"


def test_empty_body_is_400(api: httpx.Client) -> None:
    assert api.post("/api/jobs").status_code == 400


def test_json_that_is_not_an_object_is_422(api: httpx.Client) -> None:
    response = api.post("/api/resources", json=[1, 2])
    assert response.status_code == 422
    assert error_code(response) == "validation_error"


def test_body_over_one_mebibyte_is_413(api: httpx.Client) -> None:
    big = b'{"type": "t", "content": "' + b"x" * (1024 * 1024) + b'"}'
    response = api.post("/api/resources", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


def test_streamed_body_over_the_limit_is_413(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"type": "t", "content": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    response = api.post("/api/resources", content=chunks())  # chunked: no Content-Length
    assert response.status_code == 413


def test_body_just_under_the_limit_is_fine(api: httpx.Client) -> None:
    prefix, suffix = b'{"type": "t", "content": "', b'"}'
    body = prefix + b"x" * (1024 * 1024 - len(prefix) - len(suffix)) + suffix
    response = api.post(
        "/api/resources", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201


def test_unknown_route_is_a_json_404(api: httpx.Client) -> None:
    response = api.get("/api/nothing")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_wrong_method_is_a_json_405_listing_the_allowed_ones(api: httpx.Client) -> None:
    response = api.delete("/api/events")
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
    assert {method.strip() for method in response.headers["Allow"].split(",")} >= {"GET", "POST"}


def test_responses_are_json(api: httpx.Client) -> None:
    for response in (api.get("/api/events"), api.get("/api/events/x"), api.get("/healthz")):
        assert response.headers["Content-Type"] == "application/json"


def test_unexpected_errors_are_json_500s_with_a_request_id(
    api: httpx.Client, anon: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "page", broken)
    response = api.get("/api/events", headers={"X-Request-ID": "r-500"})
    assert response.status_code == 500
    assert error_code(response) == "internal_error"
    assert "disk on fire" not in response.text
    assert response.headers["X-Request-ID"] == "r-500"
    assert anon.get("/_admin/stats").json()["requests"]["GET /api/events"] == {"500": 1}
