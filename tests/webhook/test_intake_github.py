"""GitHub deliveries through the running service: listener -> outbox -> dev server.

Real uvicorn, a real store (an SQLite file, or Redis: each test runs on both) and the reference
MFO server; the bodies are real deliveries
(tests/data/github) and failure modes receivers shipped (tests/data/bugs), signed here over the
exact file bytes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from mfo_client.config import Config
from mfo_client.delivery import OutboxStats
from mfo_client.devserver import DevServerSettings
from tests._servers import run_devserver, run_service
from tests._stores import StoreKit
from tests.webhook.conftest import TOKEN, WAIT, forwarded

DATA = Path(__file__).parent.parent / "data"
GITHUB = DATA / "github"
BUGS = DATA / "bugs"
DOCS_SECRET = "It's a Secret to Everybody"
DOCS_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
OCTOKIT_SECRET = "development"

# file stem -> the X-GitHub-Event it was sent with
DELIVERIES = {
    "push.new_branch": "push",
    "push.tag_deleted": "push",
    "pull_request.opened": "pull_request",
    "issues.opened": "issues",
    "issue_comment.created": "issue_comment",
    "ping": "ping",
    "release.published": "release",
    "workflow_run.completed": "workflow_run",
}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def bug_case(name: str) -> dict[str, Any]:
    case: dict[str, Any] = json.loads((BUGS / name).read_bytes())
    return case


def service_config(devserver: str, kit: StoreKit, **listener: Any) -> Config:
    return Config.from_mapping(
        {
            "client": {"base_url": f"{devserver}/api", "auth_token": TOKEN},
            "webhook_listener": {"port": 0, "secret_key": DOCS_SECRET, **listener},
            "store": kit.config(),
            "delivery": {"initial_backoff": "10ms", "max_backoff": "50ms"},
        },
        env={},
    )


async def outbox(kit: StoreKit) -> OutboxStats:
    """The outbox counts as a second process sees them (the server's store is on its loop)."""
    async with kit.beside() as store:
        return await store.stats()


@pytest.fixture(scope="module")
def devserver(module_kit: StoreKit) -> Iterator[str]:
    """One per backend: a test on Redis must not find what its SQLite twin forwarded."""
    with run_devserver(DevServerSettings(port=0)) as url:
        yield url


@pytest.fixture(scope="module")
def listener(devserver: str, module_kit: StoreKit) -> Iterator[str]:
    """The default source (GitHub scheme) at /webhook, and an octokit-signed one at /octokit."""
    config = service_config(
        devserver,
        module_kit,
        sources=[{"name": "octokit", "path": "/octokit", "secret": OCTOKIT_SECRET}],
    )
    with run_service(config) as (url, _):
        yield url


def github_headers(
    secret: str, body: bytes, event: str | None, delivery: str | None
) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)}
    if event is not None:
        headers["X-GitHub-Event"] = event
    if delivery is not None:
        headers["X-GitHub-Delivery"] = delivery
    return headers


# --- GitHub's documented example --------------------------------------------------------------


async def test_documented_signature_passes_then_the_body_is_refused_as_json(
    http: httpx.AsyncClient, listener: str
) -> None:
    response = await http.post(
        f"{listener}/webhook",
        content=b"Hello, World!",
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": DOCS_SIGNATURE},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert "line 1 column 1" in error["message"]


async def test_one_changed_byte_fails_the_signature_without_revealing_the_digest(
    http: httpx.AsyncClient, listener: str
) -> None:
    response = await http.post(
        f"{listener}/webhook",
        content=b"Hello, World?",
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": DOCS_SIGNATURE},
    )
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_signature"
    assert "X-Hub-Signature-256" in error["message"]
    assert "does not match" in error["message"]
    expected = sign(DOCS_SECRET, b"Hello, World?").removeprefix("sha256=")
    assert expected not in response.text
    assert DOCS_SECRET not in response.text


# --- real deliveries ---------------------------------------------------------------------------


@pytest.mark.parametrize("stem", sorted(DELIVERIES))
async def test_real_delivery_is_accepted_and_forwarded_whole(
    http: httpx.AsyncClient, listener: str, devserver: str, stem: str
) -> None:
    body = (GITHUB / f"{stem}.json").read_bytes()
    delivery = str(uuid.uuid4())
    kind = DELIVERIES[stem]
    before = time.time()

    response = await http.post(
        f"{listener}/webhook",
        content=body,
        headers={
            **github_headers(DOCS_SECRET, body, kind, delivery),
            "User-Agent": "GitHub-Hookshot/044aadd",
        },
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"id": delivery, "duplicate": False}
    event = await forwarded(http, devserver, delivery)
    assert event["id"] == delivery
    assert event["type"] == kind
    assert event["payload"] == json.loads(body)
    assert event["source"] == "default"
    webhook = event["metadata"]["webhook"]
    assert webhook == {
        "source": "default",
        "delivery_id": delivery,
        "received_at": webhook["received_at"],
        "provider_event": kind,
        "scheme": "github",
        "verified": True,
    }
    received = datetime.fromisoformat(webhook["received_at"]).timestamp()
    assert before - 1 <= received <= time.time() + 1


async def test_ping_without_action_gets_a_2xx_and_keeps_its_fields(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    body = (GITHUB / "ping.json").read_bytes()
    assert "action" not in json.loads(body)
    delivery = str(uuid.uuid4())
    response = await http.post(
        f"{listener}/webhook",
        content=body,
        headers=github_headers(DOCS_SECRET, body, "ping", delivery),
    )
    assert 200 <= response.status_code < 300
    payload = (await forwarded(http, devserver, delivery))["payload"]
    assert payload["zen"] == "Anything added dilutes everything else."
    assert payload["hook_id"] == 109948940
    assert payload["hook"]["events"] == ["*"]


async def test_form_encoded_ping_is_verified_over_the_raw_form_and_decoded(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    body = (GITHUB / "form" / "ping.body").read_bytes()
    sent = json.loads((GITHUB / "form" / "ping.headers.json").read_bytes())
    headers = {k: v for k, v in sent.items() if k not in ("host", "connection")}
    headers["X-Hub-Signature-256"] = sign(DOCS_SECRET, body)

    response = await http.post(f"{listener}/webhook", content=body, headers=headers)

    assert response.status_code == 202, response.text
    assert response.json() == {"id": "44840d80-36a8-11e7-89d0-954e94e187c2", "duplicate": False}
    event = await forwarded(http, devserver, "44840d80-36a8-11e7-89d0-954e94e187c2")
    assert event["type"] == "ping"
    assert event["payload"]["zen"] == "Keep it logically awesome."
    assert event["payload"]["hook_id"] == 13736792
    assert event["payload"]["hook"]["config"]["content_type"] == "form"
    assert event["payload"]["repository"]["full_name"] == "brettcannon/gidgethub"


# --- bugs receivers shipped ---------------------------------------------------------------------


async def test_signature_over_a_reserialised_body_is_refused(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    case = bug_case("case_issue_05_signature_over_reserialized_body.json")
    raw = base64.b64decode(case["input"]["body_base64"])
    reserialised = case["counterexample"]["bytes_utf8"].encode()
    assert json.loads(raw) == json.loads(reserialised)
    headers = {**case["input"]["headers"], "X-GitHub-Delivery": str(uuid.uuid4())}

    genuine = await http.post(f"{listener}/webhook", content=raw, headers=headers)
    after_parsing = await http.post(f"{listener}/webhook", content=reserialised, headers=headers)
    its_own_hmac = await http.post(
        f"{listener}/webhook",
        content=raw,
        headers={**headers, "X-Hub-Signature-256": case["counterexample"]["its_hmac"]},
    )

    assert genuine.status_code == 202, genuine.text
    assert after_parsing.status_code == 401
    assert after_parsing.json()["error"]["code"] == "invalid_signature"
    assert its_own_hmac.status_code == 401
    event = await forwarded(http, devserver, genuine.json()["id"])
    assert event["payload"]["zen"] == "Design for failure."


async def test_escape_case_is_kept_as_sent(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    case = bug_case("case_issue_01_reserialized_json_escape_case.json")
    raw = base64.b64decode(case["input"]["body_base64"])
    assert b"\\u001B" in raw
    headers = {**case["input"]["headers"], "X-GitHub-Delivery": str(uuid.uuid4())}

    response = await http.post(f"{listener}/octokit", content=raw, headers=headers)
    lowered = await http.post(
        f"{listener}/octokit",
        content=base64.b64decode(case["counterexample"]["body_base64"]),
        headers=headers,
    )

    assert response.status_code == 202, response.text
    assert lowered.status_code == 401
    event = await forwarded(http, devserver, response.json()["id"])
    assert event["type"] == "issue_comment"
    assert event["source"] == "octokit"
    assert event["payload"] == json.loads(raw)
    assert event["payload"]["foo"].startswith("Foo\n\x1b[34mbar: ♥")


async def test_same_delivery_id_twice_is_stored_and_forwarded_once(
    http: httpx.AsyncClient, kit: StoreKit
) -> None:
    case = bug_case("case_issue_14_redelivery_same_delivery_id.json")
    body = (GITHUB / Path(case["input"]["body_file"]).name).read_bytes()
    first, again, other = (r["headers"] for r in case["input"]["requests"])
    with (
        run_devserver(DevServerSettings(port=0)) as devserver,
        run_service(service_config(devserver, kit)) as (url, _),
    ):

        async def send(headers: dict[str, str]) -> httpx.Response:
            signed = {**headers, "Content-Type": "application/json"}
            signed["X-Hub-Signature-256"] = sign(DOCS_SECRET, body)
            return await http.post(f"{url}/webhook", content=body, headers=signed)

        one, two = await send(first), await send(again)

        delivery = first["X-GitHub-Delivery"]
        assert (one.status_code, one.json()) == (202, {"id": delivery, "duplicate": False})
        assert (two.status_code, two.json()) == (202, {"id": delivery, "duplicate": True})
        event = await forwarded(http, devserver, delivery)
        assert event["payload"]["number"] == 2
        await settled(kit, delivered=1)
        assert await posted_events(http, devserver) == 1

        three = await send(other)
        assert (three.status_code, three.json()) == (
            202,
            {"id": other["X-GitHub-Delivery"], "duplicate": False},
        )
        await forwarded(http, devserver, other["X-GitHub-Delivery"])
        await settled(kit, delivered=2)
        assert await posted_events(http, devserver) == 2


async def settled(kit: StoreKit, *, delivered: int) -> None:
    """Wait until the outbox holds exactly `delivered` events, all delivered."""
    deadline = time.monotonic() + WAIT
    while True:
        stats = await outbox(kit)
        if (stats.pending, stats.in_flight, stats.dead) == (0, 0, 0):
            assert stats.delivered == delivered
            return
        assert time.monotonic() < deadline, stats
        await asyncio.sleep(0.02)


async def posted_events(http: httpx.AsyncClient, devserver: str) -> int:
    stats = (await http.get(f"{devserver}/_admin/stats")).json()["requests"]
    count: int = stats.get("POST /api/events", {}).get("202", 0)
    return count


# --- the seed format ---------------------------------------------------------------------------


async def test_seed_format_event_gives_type_and_inner_payload(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    inner = {"id": "user123", "email": "test@example.com"}
    body = json.dumps({"type": "user_created", "payload": inner}).encode()

    response = await http.post(
        f"{listener}/webhook", content=body, headers=github_headers(DOCS_SECRET, body, None, None)
    )

    assert response.status_code == 202, response.text
    event_id = response.json()["id"]
    assert uuid.UUID(event_id).version == 4
    assert response.json()["duplicate"] is False
    event = await forwarded(http, devserver, event_id)
    assert event["type"] == "user_created"
    assert event["payload"] == inner
    assert event["source"] == "default"
    webhook = event["metadata"]["webhook"]
    assert (webhook["delivery_id"], webhook["provider_event"]) == (None, None)
    assert (webhook["scheme"], webhook["verified"]) == ("github", True)


# --- edges a body or header may take --------------------------------------------------------------


async def test_empty_delivery_header_does_not_make_later_deliveries_repeats(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    ids = []
    for n in (1, 2):
        body = json.dumps({"type": "user_created", "payload": {"n": n}}).encode()
        headers = {**github_headers(DOCS_SECRET, body, None, None), "X-GitHub-Delivery": ""}
        response = await http.post(f"{listener}/webhook", content=body, headers=headers)
        assert response.status_code == 202, response.text
        assert response.json()["duplicate"] is False
        ids.append(response.json()["id"])

    assert ids[0] != ids[1]
    for n, event_id in enumerate(ids, start=1):
        event = await forwarded(http, devserver, event_id)
        assert event["payload"] == {"n": n}
        assert event["metadata"]["webhook"]["delivery_id"] is None


async def test_escaped_emoji_and_deep_nesting_within_the_limit_are_forwarded(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    deep = b"[" * 199 + b'"\\ud83d\\ude00"' + b"]" * 199  # 200 levels with the seed wrapper
    body = b'{"type": "nested", "payload": ' + deep + b"}"

    response = await http.post(
        f"{listener}/webhook", content=body, headers=github_headers(DOCS_SECRET, body, None, None)
    )

    assert response.status_code == 202, response.text
    event = await forwarded(http, devserver, response.json()["id"])
    assert event["payload"] == json.loads(deep)
    innermost = event["payload"]
    while isinstance(innermost, list):
        (innermost,) = innermost
    assert innermost == "\N{GRINNING FACE}"
