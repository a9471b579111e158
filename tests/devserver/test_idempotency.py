"""`Idempotency-Key` on POST: replay, stored once, reuse with another body, scope, in flight."""

from __future__ import annotations

import threading

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mfo_client.devserver._idempotency import IdempotencyMiddleware
from mfo_client.devserver._store import Store
from tests._servers import run_app
from tests.devserver.conftest import error_code


def _post(api: httpx.Client, path: str, json: object, key: str) -> httpx.Response:
    return api.post(path, json=json, headers={"Idempotency-Key": key})


@pytest.mark.parametrize(
    ("path", "body", "list_path"),
    [
        ("/api/resources", {"type": "r"}, "/api/resources"),
        ("/api/jobs", {"type": "j"}, None),
        ("/api/notifications", {"recipient": "a", "message": "b"}, "/api/notifications"),
        ("/api/chat/threads/t/messages", {"message": "hi"}, "/api/chat/threads/t/messages"),
        ("/api/events", {"type": "e", "payload": 1}, "/api/events"),
    ],
)
def test_repeat_with_the_same_key_replays_the_first_response(
    api: httpx.Client, path: str, body: dict[str, object], list_path: str | None
) -> None:
    first = _post(api, path, body, "key-1")
    again = _post(api, path, body, "key-1")
    assert again.status_code == first.status_code
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    if list_path is not None:
        assert len(api.get(list_path).json()["items"]) == 1


def test_same_json_with_other_spacing_and_key_order_is_the_same_body(api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "k", "Content-Type": "application/json"}
    first = api.post(
        "/api/notifications", content=b'{"recipient":"a","message":"b"}', headers=headers
    )
    again = api.post(
        "/api/notifications", content=b'{ "message": "b",  "recipient": "a" }', headers=headers
    )
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


def test_same_key_with_a_different_body_is_refused(api: httpx.Client) -> None:
    _post(api, "/api/resources", {"type": "a"}, "k")
    response = _post(api, "/api/resources", {"type": "b"}, "k")
    assert response.status_code == 422
    assert error_code(response) == "idempotency_key_reused"
    assert len(api.get("/api/resources").json()["items"]) == 1


def test_keys_are_scoped_per_path(api: httpx.Client) -> None:
    a = _post(api, "/api/resources", {"type": "a"}, "shared")
    b = _post(api, "/api/jobs", {"type": "a"}, "shared")
    assert a.status_code == 201 and b.status_code == 201
    assert "Idempotent-Replayed" not in b.headers


def test_keys_are_scoped_per_caller_but_survive_a_token_refresh(
    api: httpx.Client, anon: httpx.Client
) -> None:
    from tests.devserver.conftest import PASSWORD, USER

    login = anon.post("/auth/login", json={"username": USER, "password": PASSWORD}).json()
    as_user = {"Authorization": f"Bearer {login['access_token']}", "Idempotency-Key": "k"}
    by_user = anon.post("/api/resources", json={"type": "a"}, headers=as_user)
    by_static = _post(api, "/api/resources", {"type": "a"}, "k")
    assert by_static.json()["id"] != by_user.json()["id"]  # another caller, another key space

    refreshed = anon.post("/auth/refresh", json={"refresh_token": login["refresh_token"]}).json()
    as_user["Authorization"] = f"Bearer {refreshed['access_token']}"
    retried = anon.post("/api/resources", json={"type": "a"}, headers=as_user)
    assert retried.json() == by_user.json()
    assert retried.headers["Idempotent-Replayed"] == "true"


def test_a_rejected_request_is_replayed_too(api: httpx.Client) -> None:
    first = _post(api, "/api/jobs/nope/cancel", None, "k")
    again = _post(api, "/api/jobs/nope/cancel", None, "k")
    assert first.status_code == again.status_code == 404
    assert again.headers["Idempotent-Replayed"] == "true"


def test_transient_failures_are_not_kept(api: httpx.Client, anon: httpx.Client) -> None:
    anon.post("/_admin/faults", json={"status": 503, "count": 1})
    failed = _post(api, "/api/resources", {"type": "a"}, "k")
    assert failed.status_code == 503
    retried = _post(api, "/api/resources", {"type": "a"}, "k")
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


@pytest.mark.parametrize("key", ["x" * 256])
def test_overlong_key_is_refused(api: httpx.Client, key: str) -> None:
    response = _post(api, "/api/resources", {"type": "a"}, key)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["error"]["message"]


def test_a_response_held_back_is_already_kept_for_the_retry(
    api: httpx.Client, anon: httpx.Client
) -> None:
    # Injected latency holds the response after the request took effect: the client times
    # out, retries with its key and gets the kept response instead of a second resource.
    anon.post("/_admin/faults", json={"latency_ms": 600, "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        api.post(
            "/api/resources", json={"type": "a"}, headers={"Idempotency-Key": "k"}, timeout=0.2
        )
    retried = _post(api, "/api/resources", {"type": "a"}, "k")
    assert retried.status_code == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert [item["id"] for item in api.get("/api/resources").json()["items"]] == [
        retried.json()["id"]
    ]


def test_injected_client_errors_are_not_kept_either(api: httpx.Client, anon: httpx.Client) -> None:
    anon.post("/_admin/faults", json={"status": 400, "count": 1})
    assert _post(api, "/api/resources", {"type": "a"}, "k").status_code == 400
    assert _post(api, "/api/resources", {"type": "a"}, "k").status_code == 201


def _slow_app(started: threading.Event) -> Starlette:
    async def slow(request: Request) -> Response:
        started.set()
        await anyio.sleep(0.5)
        return JSONResponse({"done": True}, status_code=201)

    return Starlette(
        routes=[Route("/slow", slow, methods=["POST"])],
        middleware=[Middleware(IdempotencyMiddleware, store=Store(":memory:"))],
    )


def test_repeat_while_the_first_is_in_flight_is_409() -> None:
    started = threading.Event()
    headers = {"Idempotency-Key": "slow"}
    with run_app(_slow_app(started)) as url:
        results: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: results.append(httpx.post(f"{url}/slow", json={}, headers=headers))
        )
        thread.start()
        assert started.wait(5)
        conflict = httpx.post(f"{url}/slow", json={}, headers=headers)
        thread.join()
        replayed = httpx.post(f"{url}/slow", json={}, headers=headers)
    assert results[0].status_code == 201
    assert conflict.status_code == 409
    assert error_code(conflict) == "conflict"
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
