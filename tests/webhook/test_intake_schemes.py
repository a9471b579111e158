"""Standard Webhooks, Stripe, Slack, Shopify and unsigned sources through the running service.

Each source is signed here the way its sender documents it; accepted events are read back from
the reference MFO server after forwarding, refused ones must not reach it. Each test runs on
both store backends (SQLite and Redis).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from mfo_client.config import Config
from mfo_client.delivery import OutboxStats
from mfo_client.devserver import DevServerSettings
from tests._servers import run_devserver, run_service
from tests._stores import StoreKit
from tests.webhook.conftest import TOKEN, forwarded

STANDARD_KEY = b"standard-webhooks-key-0123456789"
STANDARD_OLD_KEY = b"the-key-being-rotated-out-987654"
STRIPE_SECRET = "whsec_stripe_endpoint_secret"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SHOPIFY_SECRET = "shopify-app-client-secret"


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def hex_hmac(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def standard_headers(key: bytes, msg_id: str, body: bytes, at: int) -> dict[str, str]:
    signed = hmac.new(key, f"{msg_id}.{at}.".encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": "v1," + base64.b64encode(signed).decode(),
    }


def stripe_headers(secret: str, body: bytes, at: int) -> dict[str, str]:
    signature = hex_hmac(secret.encode(), f"{at}.".encode() + body)
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={at},v1={signature}"}


def slack_headers(secret: str, body: bytes, at: int) -> dict[str, str]:
    signature = hex_hmac(secret.encode(), f"v0:{at}:".encode() + body)
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(at),
        "X-Slack-Signature": f"v0={signature}",
    }


@pytest.fixture(scope="module")
def devserver(module_kit: StoreKit) -> Iterator[str]:
    """One per backend: a test on Redis must not find what its SQLite twin forwarded."""
    with run_devserver(DevServerSettings(port=0)) as url:
        yield url


@pytest.fixture(scope="module")
def store(module_kit: StoreKit) -> StoreKit:
    return module_kit


@pytest.fixture(scope="module")
def listener(devserver: str, store: StoreKit) -> Iterator[str]:
    config = Config.from_mapping(
        {
            "client": {"base_url": f"{devserver}/api", "auth_token": TOKEN},
            "webhook_listener": {
                "port": 0,
                "sources": [
                    {
                        "name": "billing",
                        "path": "/hooks/standard",
                        "scheme": "standard",
                        "secrets": [whsec(STANDARD_KEY), whsec(STANDARD_OLD_KEY)],
                    },
                    {
                        "name": "stripe",
                        "path": "/hooks/stripe",
                        "scheme": "stripe",
                        "secret": STRIPE_SECRET,
                    },
                    {
                        "name": "slack",
                        "path": "/hooks/slack",
                        "scheme": "slack",
                        "secret": SLACK_SECRET,
                    },
                    {
                        "name": "shop",
                        "path": "/hooks/shopify",
                        "scheme": "shopify",
                        "secret": SHOPIFY_SECRET,
                    },
                    {"name": "local", "path": "/hooks/unsigned", "scheme": "none"},
                ],
            },
            "store": store.config(),
            "delivery": {"initial_backoff": "10ms", "max_backoff": "50ms"},
        },
        env={},
    )
    with run_service(config) as (url, _):
        yield url


async def outbox(kit: StoreKit) -> OutboxStats:
    async with kit.beside() as admin:
        return await admin.stats()


async def stored_count(kit: StoreKit) -> int:
    stats = await outbox(kit)
    return stats.pending + stats.in_flight + stats.delivered + stats.dead


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    message: str = error["message"]
    return message


# --- Standard Webhooks --------------------------------------------------------------------------

INVOICE = json.dumps(
    {"type": "invoice.paid", "timestamp": "2024-05-01T12:00:00Z", "data": {"invoice": "in_42"}}
).encode()


async def test_standard_webhooks_delivery_is_forwarded_under_its_webhook_id(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    msg_id = f"msg_{uuid.uuid4().hex}"
    headers = standard_headers(STANDARD_KEY, msg_id, INVOICE, int(time.time()))

    response = await http.post(f"{listener}/hooks/standard", content=INVOICE, headers=headers)

    assert response.status_code == 202, response.text
    assert response.json() == {"id": msg_id, "duplicate": False}
    event = await forwarded(http, devserver, msg_id)
    assert event["type"] == "invoice.paid"
    assert event["payload"] == json.loads(INVOICE)
    assert event["source"] == "billing"
    webhook = event["metadata"]["webhook"]
    assert (webhook["scheme"], webhook["verified"]) == ("standard", True)
    assert (webhook["delivery_id"], webhook["provider_event"]) == (msg_id, None)


async def test_standard_webhooks_second_secret_still_verifies_during_rotation(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    msg_id = f"msg_{uuid.uuid4().hex}"
    headers = standard_headers(STANDARD_OLD_KEY, msg_id, INVOICE, int(time.time()))

    response = await http.post(f"{listener}/hooks/standard", content=INVOICE, headers=headers)

    assert response.status_code == 202, response.text
    assert response.json()["id"] == msg_id
    assert (await forwarded(http, devserver, msg_id))["type"] == "invoice.paid"


async def test_standard_webhooks_stale_timestamp_is_refused(
    http: httpx.AsyncClient, listener: str, store: StoreKit
) -> None:
    before = await stored_count(store)
    msg_id = f"msg_{uuid.uuid4().hex}"
    headers = standard_headers(STANDARD_KEY, msg_id, INVOICE, int(time.time()) - 301 - 5)

    response = await http.post(f"{listener}/hooks/standard", content=INVOICE, headers=headers)

    message = refused(response, 401, "stale_timestamp")
    assert "webhook-timestamp" in message
    assert "tolerance of 300 s" in message
    assert await stored_count(store) == before


async def test_standard_webhooks_future_timestamp_is_refused_as_such(
    http: httpx.AsyncClient, listener: str
) -> None:
    msg_id = f"msg_{uuid.uuid4().hex}"
    headers = standard_headers(STANDARD_KEY, msg_id, INVOICE, int(time.time()) + 600)

    response = await http.post(f"{listener}/hooks/standard", content=INVOICE, headers=headers)

    assert "in the future" in refused(response, 401, "future_timestamp")


async def test_standard_webhooks_unknown_key_is_refused(
    http: httpx.AsyncClient, listener: str
) -> None:
    msg_id = f"msg_{uuid.uuid4().hex}"
    headers = standard_headers(b"some-other-key", msg_id, INVOICE, int(time.time()))

    response = await http.post(f"{listener}/hooks/standard", content=INVOICE, headers=headers)

    assert "webhook-signature" in refused(response, 401, "invalid_signature")


# --- Stripe -------------------------------------------------------------------------------------


async def test_stripe_event_is_forwarded_under_its_event_id(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    evt = f"evt_{uuid.uuid4().hex[:24]}"
    body = json.dumps(
        {
            "id": evt,
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "amount": 2000, "currency": "eur"}},
        },
        indent=2,
    ).encode()

    response = await http.post(
        f"{listener}/hooks/stripe",
        content=body,
        headers=stripe_headers(STRIPE_SECRET, body, int(time.time())),
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"id": evt, "duplicate": False}
    event = await forwarded(http, devserver, evt)
    assert event["type"] == "payment_intent.succeeded"
    assert event["payload"]["data"]["object"]["amount"] == 2000
    webhook = event["metadata"]["webhook"]
    assert (webhook["source"], webhook["scheme"], webhook["delivery_id"]) == (
        "stripe",
        "stripe",
        evt,
    )


async def test_stripe_signature_with_another_secret_is_refused(
    http: httpx.AsyncClient, listener: str, store: StoreKit
) -> None:
    before = await stored_count(store)
    body = b'{"id": "evt_forged", "object": "event", "type": "charge.refunded"}'

    response = await http.post(
        f"{listener}/hooks/stripe",
        content=body,
        headers=stripe_headers("whsec_guessed", body, int(time.time())),
    )

    message = refused(response, 401, "invalid_signature")
    assert "Stripe-Signature" in message
    assert STRIPE_SECRET not in response.text
    assert await stored_count(store) == before


# --- Slack --------------------------------------------------------------------------------------

SLACK_EVENT = json.dumps(
    {
        "token": "XXYYZZ",
        "team_id": "T123ABC456",
        "type": "event_callback",
        "event": {"type": "app_mention", "user": "U123ABC456", "text": "<@U0LAN0Z89> hi"},
        "event_id": "Ev123ABC456",
        "event_time": 1515449522000016,
    }
).encode()


async def test_slack_event_is_forwarded_with_the_body_type(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    response = await http.post(
        f"{listener}/hooks/slack",
        content=SLACK_EVENT,
        headers=slack_headers(SLACK_SECRET, SLACK_EVENT, int(time.time())),
    )

    assert response.status_code == 202, response.text
    event = await forwarded(http, devserver, response.json()["id"])
    assert event["type"] == "event_callback"
    assert event["payload"]["event"]["type"] == "app_mention"
    assert event["source"] == "slack"
    assert event["metadata"]["webhook"]["scheme"] == "slack"


async def test_slack_body_changed_after_signing_is_refused(
    http: httpx.AsyncClient, listener: str
) -> None:
    headers = slack_headers(SLACK_SECRET, SLACK_EVENT, int(time.time()))
    tampered = SLACK_EVENT.replace(b"hi", b"ho")

    response = await http.post(f"{listener}/hooks/slack", content=tampered, headers=headers)

    assert "X-Slack-Signature" in refused(response, 401, "invalid_signature")


# --- Shopify ------------------------------------------------------------------------------------


async def test_shopify_topic_and_webhook_id_come_from_its_headers(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    body = b'{"id": 820982911946154508, "email": "jon@example.com", "total_price": "9.99"}'
    webhook_id = str(uuid.uuid4())
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()

    response = await http.post(
        f"{listener}/hooks/shopify",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        },
    )

    assert response.status_code == 202, response.text
    assert response.json()["id"] == webhook_id
    event = await forwarded(http, devserver, webhook_id)
    assert event["type"] == "orders/create"
    assert event["payload"]["id"] == 820982911946154508
    assert event["metadata"]["webhook"]["provider_event"] == "orders/create"


# --- scheme "none" ------------------------------------------------------------------------------


async def test_unsigned_source_accepts_requests_and_marks_them_unverified(
    http: httpx.AsyncClient, listener: str, devserver: str
) -> None:
    response = await http.post(
        f"{listener}/hooks/unsigned", json={"type": "build.finished", "payload": {"ok": True}}
    )

    assert response.status_code == 202, response.text
    event = await forwarded(http, devserver, response.json()["id"])
    assert (event["type"], event["payload"], event["source"]) == (
        "build.finished",
        {"ok": True},
        "local",
    )
    webhook = event["metadata"]["webhook"]
    assert (webhook["scheme"], webhook["verified"]) == ("none", False)
