"""What the running listener refuses, and how: the JSON error shape, the status a sender acts on,
and nothing stored; then backpressure, health, and a configuration that cannot serve. Each test
runs on both store backends (SQLite and Redis)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from mfo_client.config import Config
from mfo_client.service import Service
from mfo_client.webhook import SourceError
from tests._servers import run_service
from tests._stores import StoreKit, redis_keys

SECRET = "refusal-tests-secret"
LIMIT = 1000
NOWHERE = "http://127.0.0.1:9/api"  # never called: these services accept, nobody forwards


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, content_type: str = "application/json", **extra: str) -> dict[str, str]:
    return {"Content-Type": content_type, "X-Hub-Signature-256": sign(body), **extra}


def config(
    kit: StoreKit, listener: dict[str, Any] | None = None, store: dict[str, Any] | None = None
) -> Config:
    return Config.from_mapping(
        {
            "client": {"base_url": NOWHERE, "auth_token": "dev-token"},
            "webhook_listener": {"port": 0, "secret_key": SECRET, **(listener or {})},
            "store": kit.config(**(store or {})),
        },
        env={},
    )


async def stored(kit: StoreKit) -> int:
    """Events in the outbox, counted through a second store on the same file or prefix."""
    async with kit.beside() as admin:
        stats = await admin.stats()
    return stats.pending + stats.in_flight + stats.delivered + stats.dead


@pytest.fixture(scope="module")
def store(module_kit: StoreKit) -> StoreKit:
    return module_kit


@pytest.fixture(scope="module")
def listener(store: StoreKit) -> Iterator[str]:
    """The default source at /webhook, and a source at /small that takes at most LIMIT bytes."""
    small = {"name": "small", "path": "/small", "secret": SECRET, "max_body_size": LIMIT}
    with run_service(config(store, listener={"sources": [small]}), workers=False) as (url, _):
        yield url


@pytest.fixture
async def nothing_stored(store: StoreKit, listener: str) -> AsyncIterator[None]:
    """Whatever the test sends, the outbox holds no event afterwards."""
    assert await stored(store) == 0
    yield
    assert await stored(store) == 0


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    return message


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_only_post_is_allowed(http: httpx.AsyncClient, listener: str, method: str) -> None:
    body = b'{"type": "user_created", "payload": {}}'
    response = await http.request(method, f"{listener}/webhook", content=body, headers=signed(body))

    message = error_of(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    assert method in message
    assert "POST" in message


@pytest.mark.usefixtures("nothing_stored")
async def test_declared_body_over_the_source_limit_is_refused(
    http: httpx.AsyncClient, listener: str
) -> None:
    body = json.dumps({"type": "big", "payload": {"blob": "x" * LIMIT}}).encode()

    response = await http.post(f"{listener}/small", content=body, headers=signed(body))

    message = error_of(response, 413, "payload_too_large")
    assert f"limit of {LIMIT} bytes" in message


@pytest.mark.usefixtures("nothing_stored")
async def test_chunked_body_over_the_source_limit_is_refused(
    http: httpx.AsyncClient, listener: str
) -> None:
    body = json.dumps({"type": "big", "payload": {"blob": "x" * LIMIT}}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 256):
            yield body[start : start + 256]

    response = await http.post(f"{listener}/small", content=chunks(), headers=signed(body))

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert f"limit of {LIMIT} bytes" in error_of(response, 413, "payload_too_large")


@pytest.mark.usefixtures("nothing_stored")
async def test_limit_is_per_source(http: httpx.AsyncClient, listener: str) -> None:
    body = json.dumps({"blob": "x" * LIMIT}).encode()  # over /small's limit, no type

    response = await http.post(f"{listener}/webhook", content=body, headers=signed(body))

    # /webhook reads the whole body and gets as far as the event type.
    error_of(response, 400, "unknown_event_type")


@pytest.mark.usefixtures("nothing_stored")
async def test_text_plain_is_unsupported(http: httpx.AsyncClient, listener: str) -> None:
    body = b'{"type": "user_created", "payload": {}}'

    response = await http.post(
        f"{listener}/webhook", content=body, headers=signed(body, "text/plain")
    )

    message = error_of(response, 415, "unsupported_media_type")
    assert "text/plain" in message
    assert "application/json" in message


@pytest.mark.usefixtures("nothing_stored")
async def test_invalid_json_names_line_and_column(http: httpx.AsyncClient, listener: str) -> None:
    body = b'{\n  "type": "user_created",\n  "payload": {"id": 1,}\n}\n'
    with pytest.raises(json.JSONDecodeError) as parsed:
        json.loads(body)

    response = await http.post(f"{listener}/webhook", content=body, headers=signed(body))

    message = error_of(response, 400, "invalid_json")
    assert f"line {parsed.value.lineno} column {parsed.value.colno}" in message
    assert parsed.value.lineno == 3


@pytest.mark.usefixtures("nothing_stored")
async def test_event_type_that_cannot_be_told_is_refused(
    http: httpx.AsyncClient, listener: str
) -> None:
    body = b'{"zen": "Design for failure.", "hook_id": 1}'

    response = await http.post(f"{listener}/webhook", content=body, headers=signed(body))

    message = error_of(response, 400, "unknown_event_type")
    assert "X-GitHub-Event" in message
    assert '"type"' in message


@pytest.mark.usefixtures("nothing_stored")
async def test_missing_signature_header_is_named(http: httpx.AsyncClient, listener: str) -> None:
    response = await http.post(
        f"{listener}/webhook",
        json={"type": "user_created", "payload": {}},
        headers={"X-GitHub-Event": "push"},
    )

    message = error_of(response, 401, "invalid_signature")
    assert "X-Hub-Signature-256" in message
    assert "missing" in message


@pytest.mark.usefixtures("nothing_stored")
async def test_malformed_signature_header_says_what_is_expected(
    http: httpx.AsyncClient, listener: str
) -> None:
    body = b'{"type": "user_created", "payload": {}}'
    bare = sign(body).removeprefix("sha256=")

    response = await http.post(
        f"{listener}/webhook",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": bare},
    )

    assert "'sha256=' followed by 64 hex digits" in error_of(response, 401, "invalid_signature")


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"NaN", "NaN is not a JSON value"),
        (b"[-Infinity]", "-Infinity is not a JSON value"),
        (b"1e400", "the number 1e400 is too large to represent"),
        (b"1" * 5000, "a number has more than 4300 digits"),
        (b'"\\ud800"', "unpaired UTF-16 surrogate"),
        (b"[" * 201 + b"]" * 201, "arrays and objects nest more than 200 deep"),
        (b"[" * 5000 + b"]" * 5000, "arrays and objects nest more than 200 deep"),
    ],
    ids=["nan", "infinity", "float-overflow", "huge-int", "lone-surrogate", "deep", "deeper"],
)
async def test_json_the_event_could_not_carry_is_refused_not_a_500(
    http: httpx.AsyncClient, listener: str, payload: bytes, problem: str
) -> None:
    # Python's decoder takes all of these; storing or forwarding them would fail later.
    body = b'{"type": "measured", "payload": ' + payload + b"}"

    response = await http.post(f"{listener}/webhook", content=body, headers=signed(body))

    message = error_of(response, 400, "invalid_json")
    assert message.startswith("body is not valid JSON: ")
    assert problem in message


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    "delivery",
    [b"d" * 256, "caf\xe9".encode("latin-1"), b"tab\there"],
    ids=["too-long", "not-ascii", "control-character"],
)
async def test_delivery_id_the_mfo_server_cannot_take_is_refused(
    http: httpx.AsyncClient, listener: str, delivery: bytes
) -> None:
    body = b'{"type": "user_created", "payload": {}}'
    headers = {k.encode(): v.encode() for k, v in signed(body).items()}
    headers[b"X-GitHub-Delivery"] = delivery

    response = await http.post(f"{listener}/webhook", content=body, headers=headers)

    message = error_of(response, 400, "bad_delivery_id")
    assert "X-GitHub-Delivery" in message
    assert "1 to 255 printable ASCII characters" in message


@pytest.mark.usefixtures("nothing_stored")
async def test_unknown_path_is_a_json_404(http: httpx.AsyncClient, listener: str) -> None:
    body = b'{"type": "user_created", "payload": {}}'

    response = await http.post(f"{listener}/webhooks", content=body, headers=signed(body))

    assert "/webhooks" in error_of(response, 404, "not_found")


async def test_health_endpoint_refuses_post_in_json(http: httpx.AsyncClient, listener: str) -> None:
    response = await http.post(f"{listener}/healthz")

    assert "POST" in error_of(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_health_and_readiness(http: httpx.AsyncClient, listener: str) -> None:
    health = await http.get(f"{listener}/healthz")
    ready = await http.get(f"{listener}/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


async def test_full_outbox_answers_503_with_retry_after(
    http: httpx.AsyncClient, kit: StoreKit
) -> None:
    with run_service(config(kit, store={"max_pending": 2}), workers=False) as (url, _):

        async def send(n: int) -> httpx.Response:
            body = json.dumps({"type": "user_created", "payload": {"n": n}}).encode()
            headers = signed(body, **{"X-GitHub-Delivery": f"delivery-{n}"})
            return await http.post(f"{url}/webhook", content=body, headers=headers)

        first, second, third = await send(1), await send(2), await send(3)
        again = await send(1)

        assert (first.status_code, second.status_code) == (202, 202)
        message = error_of(third, 503, "overloaded")
        assert "retry later" in message
        assert int(third.headers["retry-after"]) >= 1
        # A redelivery of a stored event is still acknowledged: it needs no room.
        assert (again.status_code, again.json()) == (202, {"id": "delivery-1", "duplicate": True})
        assert await stored(kit) == 2


async def test_no_secret_and_no_sources_cannot_start(kit: StoreKit) -> None:
    unsigned = Config.from_mapping({"webhook_listener": {"port": 0}, "store": kit.config()}, env={})

    with pytest.raises(SourceError) as caught:
        Service(unsigned)

    message = str(caught.value)
    assert "webhook_listener.secret_key" in message
    assert "webhook_listener.sources" in message
    assert '"none"' in message
    # Refused before the store was made: no file, no key.
    if kit.backend == "sqlite":
        assert not kit.path.exists()
    else:
        assert await redis_keys(kit.prefix) == []
