"""Subscription handshakes through the running listener: Slack's signed `url_verification` and
Meta's `hub.challenge` GET are answered only where configured, and never stored; then the
configuration that turns them on, its refusals, and its redaction. The tests through the
listener run on both store backends (SQLite and Redis)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from mfo_client.cli import app as cli
from mfo_client.config import Config, ConfigError
from tests._servers import run_service
from tests._stores import StoreKit, peek

DATA = Path(__file__).parent.parent / "data"
URL_VERIFICATION = (DATA / "slack" / "url_verification.json").read_bytes()
WHATSAPP_TEXT = (DATA / "meta" / "whatsapp.messages.text.json").read_bytes()
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
META_APP_SECRET = "meta-app-secret-for-tests"
META_VERIFY_TOKEN = "meatyhamhock"
NOWHERE = "http://127.0.0.1:9/api"  # never called: no forwarders run here

SOURCES: list[dict[str, Any]] = [
    {
        "name": "slack",
        "path": "/hooks/slack",
        "scheme": "slack",
        "secret": SLACK_SECRET,
        "handshake": "slack",
    },
    {
        "name": "slack-plain",
        "path": "/hooks/slack-plain",
        "scheme": "slack",
        "secret": SLACK_SECRET,
    },
    {
        "name": "whatsapp",
        "path": "/hooks/whatsapp",
        "secret": META_APP_SECRET,
        "handshake": "meta",
        "verify_token": META_VERIFY_TOKEN,
    },
    {
        "name": "whatsapp-202",
        "path": "/hooks/whatsapp-202",
        "secret": META_APP_SECRET,
        "handshake": "meta",
        "verify_token": META_VERIFY_TOKEN,
        "ack_status": 202,
    },
    {
        "name": "slack-200",
        "path": "/hooks/slack-200",
        "scheme": "slack",
        "secret": SLACK_SECRET,
        "ack_status": 200,
    },
]


def slack_headers(body: bytes, at: int, secret: str = SLACK_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{at}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(at),
        "X-Slack-Signature": f"v0={digest}",
    }


def meta_headers(body: bytes, secret: str = META_APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


@pytest.fixture(scope="module")
def store(module_kit: StoreKit) -> StoreKit:
    return module_kit


@pytest.fixture(scope="module")
def listener(store: StoreKit) -> Iterator[str]:
    config = Config.from_mapping(
        {
            "client": {"base_url": NOWHERE, "auth_token": "dev-token"},
            "webhook_listener": {"port": 0, "sources": SOURCES},
            "store": store.config(),
        },
        env={},
    )
    with run_service(config, workers=False) as (url, _):
        yield url


async def stored_events(kit: StoreKit) -> list[dict[str, Any]]:
    """Every event waiting to be forwarded, read through a second store (and given back)."""
    return [lease.event for lease in await peek(kit)]


@pytest.fixture
async def nothing_stored(store: StoreKit, listener: str) -> AsyncIterator[None]:
    before = len(await stored_events(store))
    yield
    assert len(await stored_events(store)) == before


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    message: str = error["message"]
    return message


# --- Slack url_verification ---------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_stored")
async def test_slack_url_verification_is_answered_with_the_challenge(
    http: httpx.AsyncClient, listener: str
) -> None:
    headers = slack_headers(URL_VERIFICATION, int(time.time()))

    response = await http.post(f"{listener}/hooks/slack", content=URL_VERIFICATION, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    assert response.json() == {"challenge": challenge}


@pytest.mark.usefixtures("nothing_stored")
async def test_forged_slack_url_verification_is_refused(
    http: httpx.AsyncClient, listener: str
) -> None:
    headers = slack_headers(URL_VERIFICATION, int(time.time()), secret="not-the-signing-secret")

    response = await http.post(f"{listener}/hooks/slack", content=URL_VERIFICATION, headers=headers)

    assert "X-Slack-Signature" in error_of(response, 401, "invalid_signature")
    assert "challenge" not in response.text


@pytest.mark.usefixtures("nothing_stored")
async def test_replayed_slack_url_verification_is_refused(
    http: httpx.AsyncClient, listener: str
) -> None:
    headers = slack_headers(URL_VERIFICATION, int(time.time()) - 3600)

    response = await http.post(f"{listener}/hooks/slack", content=URL_VERIFICATION, headers=headers)

    error_of(response, 401, "stale_timestamp")


@pytest.mark.usefixtures("nothing_stored")
async def test_slack_url_verification_without_a_challenge_is_a_bad_request(
    http: httpx.AsyncClient, listener: str
) -> None:
    body = b'{"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "type": "url_verification"}'

    response = await http.post(
        f"{listener}/hooks/slack", content=body, headers=slack_headers(body, int(time.time()))
    )

    assert '"challenge"' in error_of(response, 400, "bad_request")


async def test_slack_events_still_arrive_on_the_handshake_source(
    http: httpx.AsyncClient, listener: str, store: StoreKit
) -> None:
    body = json.dumps(
        {
            "token": "XXYYZZ",
            "team_id": "T123ABC456",
            "type": "event_callback",
            "event": {"type": "app_mention", "user": "U123ABC456", "text": "<@U0LAN0Z89> hi"},
            "event_id": "Ev123ABC456",
            "event_time": 1515449522000016,
        }
    ).encode()

    response = await http.post(
        f"{listener}/hooks/slack", content=body, headers=slack_headers(body, int(time.time()))
    )

    assert response.status_code == 202, response.text
    (event,) = [e for e in await stored_events(store) if e["id"] == response.json()["id"]]
    assert (event["type"], event["source"]) == ("event_callback", "slack")


async def test_without_the_handshake_url_verification_is_just_an_event(
    http: httpx.AsyncClient, listener: str, store: StoreKit
) -> None:
    headers = slack_headers(URL_VERIFICATION, int(time.time()))

    response = await http.post(
        f"{listener}/hooks/slack-plain", content=URL_VERIFICATION, headers=headers
    )

    assert response.status_code == 202, response.text
    assert set(response.json()) == {"id", "duplicate"}
    (event,) = [e for e in await stored_events(store) if e["id"] == response.json()["id"]]
    assert event["type"] == "url_verification"


@pytest.mark.usefixtures("nothing_stored")
async def test_get_stays_refused_where_no_meta_handshake_is_configured(
    http: httpx.AsyncClient, listener: str
) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": META_VERIFY_TOKEN, "hub.challenge": "1"}

    for path in ("/hooks/slack", "/hooks/slack-plain"):
        response = await http.get(f"{listener}{path}", params=query)

        error_of(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"


# --- Meta hub.challenge -------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_stored")
async def test_meta_verification_request_gets_the_challenge_back_as_text(
    http: httpx.AsyncClient, listener: str
) -> None:
    # The request as Meta's Graph API documentation shows it.
    url = (
        f"{listener}/hooks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444"
        f"&hub.verify_token={META_VERIFY_TOKEN}"
    )

    response = await http.get(url)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.text == "1158201444"


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "guessed", "hub.challenge": "1158201444"},
        {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1158201444"},
        {"hub.mode": "subscribe", "hub.verify_token": META_VERIFY_TOKEN[:-1], "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": META_VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.verify_token": META_VERIFY_TOKEN, "hub.challenge": "1158201444"},
        {},
    ],
)
async def test_meta_verification_with_a_wrong_token_or_mode_is_forbidden(
    http: httpx.AsyncClient, listener: str, query: dict[str, str]
) -> None:
    response = await http.get(f"{listener}/hooks/whatsapp", params=query)

    message = error_of(response, 403, "verification_failed")
    assert "hub.verify_token" in message
    assert META_VERIFY_TOKEN not in response.text
    assert "1158201444" not in response.text


@pytest.mark.usefixtures("nothing_stored")
async def test_meta_verification_without_a_challenge_is_a_bad_request(
    http: httpx.AsyncClient, listener: str
) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": META_VERIFY_TOKEN}

    response = await http.get(f"{listener}/hooks/whatsapp", params=query)

    assert "hub.challenge" in error_of(response, 400, "bad_request")


async def test_whatsapp_message_signed_with_the_app_secret_is_stored_under_its_object(
    http: httpx.AsyncClient, listener: str, store: StoreKit
) -> None:
    response = await http.post(
        f"{listener}/hooks/whatsapp", content=WHATSAPP_TEXT, headers=meta_headers(WHATSAPP_TEXT)
    )

    assert response.status_code == 200, response.text  # Meta counts only 200 as delivered
    (event,) = [e for e in await stored_events(store) if e["id"] == response.json()["id"]]
    assert event["type"] == "whatsapp_business_account"
    assert event["payload"] == json.loads(WHATSAPP_TEXT)
    message = event["payload"]["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["text"]["body"] == "Does it come in another color?"
    webhook = event["metadata"]["webhook"]
    assert (webhook["scheme"], webhook["verified"], webhook["provider_event"]) == (
        "github",
        True,
        None,
    )


async def test_meta_escaped_unicode_body_verifies_over_its_exact_bytes(
    http: httpx.AsyncClient, listener: str, store: StoreKit
) -> None:
    # Meta signs the body as sent, where non-ASCII text is escaped (\u00e4 for "ä").
    body = WHATSAPP_TEXT.replace(b"Does it come in another color?", b"Gibt es das in Gr\\u00fcn?")

    response = await http.post(
        f"{listener}/hooks/whatsapp", content=body, headers=meta_headers(body)
    )

    assert response.status_code == 200, response.text
    (event,) = [e for e in await stored_events(store) if e["id"] == response.json()["id"]]
    message = event["payload"]["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["text"]["body"] == "Gibt es das in Grün?"


@pytest.mark.usefixtures("nothing_stored")
async def test_whatsapp_message_signed_with_the_verify_token_is_refused(
    http: httpx.AsyncClient, listener: str
) -> None:
    headers = meta_headers(WHATSAPP_TEXT, secret=META_VERIFY_TOKEN)

    response = await http.post(f"{listener}/hooks/whatsapp", content=WHATSAPP_TEXT, headers=headers)

    assert "X-Hub-Signature-256" in error_of(response, 401, "invalid_signature")


@pytest.mark.usefixtures("nothing_stored")
async def test_other_methods_on_a_meta_source_name_get_and_post(
    http: httpx.AsyncClient, listener: str
) -> None:
    response = await http.put(
        f"{listener}/hooks/whatsapp", content=WHATSAPP_TEXT, headers=meta_headers(WHATSAPP_TEXT)
    )

    assert "subscription check" in error_of(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"


# --- configuration ------------------------------------------------------------------------------


def problems_of(source: dict[str, Any]) -> list[str]:
    base = {"name": "s", "path": "/s", "secret": "app-secret"}
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(
            {"webhook_listener": {"sources": [{**base, **source}]}}, source="cfg.yaml", env={}
        )
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"handshake": "meta"}, 'handshake "meta" needs a non-empty verify_token'),
        ({"handshake": "meta", "verify_token": " "}, 'handshake "meta" needs a non-empty verify'),
        ({"verify_token": "t"}, 'verify_token is only used by handshake "meta"'),
        (
            {"handshake": "slack", "scheme": "slack", "verify_token": "t"},
            'verify_token is only used by handshake "meta"',
        ),
        ({"handshake": "slack"}, 'handshake "slack" needs scheme "slack"'),
        (
            {"handshake": "meta", "verify_token": "t", "scheme": "stripe"},
            'handshake "meta" goes with scheme "github"',
        ),
        ({"handshake": "facebook"}, "handshake: must be one of slack, meta"),
    ],
)
def test_handshake_settings_that_cannot_work_are_refused(
    source: dict[str, Any], message: str
) -> None:
    (problem,) = problems_of(source)

    assert problem.startswith("cfg.yaml: webhook_listener.sources[0]")
    assert message in problem


def test_a_meta_source_takes_no_github_headers_but_keeps_configured_ones() -> None:
    config = Config.from_mapping(
        {
            "webhook_listener": {
                "sources": [
                    {**SOURCES[2], "name": "a", "path": "/a"},
                    {**SOURCES[2], "name": "b", "path": "/b", "event_type_header": "X-Kind"},
                ]
            }
        },
        env={},
    )

    plain, custom = config.webhook_listener.effective_sources()
    assert (plain.type_header, plain.delivery_header) == (None, None)
    assert custom.type_header == "X-Kind"


def test_config_check_expands_and_masks_the_verify_token(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "webhook_listener:\n"
        "  sources:\n"
        "    - name: whatsapp\n"
        "      path: /hooks/whatsapp\n"
        "      secret: ${META_APP_SECRET}\n"
        "      handshake: meta\n"
        "      verify_token: ${META_VERIFY_TOKEN}\n",
        encoding="utf-8",
    )
    unset: dict[str, str | None] = {k: None for k in os.environ if k.upper().startswith("MFO_")}
    env = {**unset, "META_APP_SECRET": META_APP_SECRET, "META_VERIFY_TOKEN": META_VERIFY_TOKEN}

    result = CliRunner().invoke(cli, ["config", "check", str(path)], env=env)

    assert result.exit_code == 0, result.stderr
    (source,) = yaml.safe_load(result.stdout)["webhook_listener"]["sources"]
    assert (source["handshake"], source["verify_token"], source["secret"]) == ("meta", "***", "***")
    assert META_VERIFY_TOKEN not in result.stdout
    assert META_APP_SECRET not in result.stdout


async def test_the_acknowledgement_status_is_configurable_per_source(
    http: httpx.AsyncClient, listener: str
) -> None:
    meta = await http.post(
        f"{listener}/hooks/whatsapp-202", content=WHATSAPP_TEXT, headers=meta_headers(WHATSAPP_TEXT)
    )
    body = b'{"type": "event_callback", "event": {"type": "app_mention"}}'
    slack = await http.post(
        f"{listener}/hooks/slack-200", content=body, headers=slack_headers(body, int(time.time()))
    )

    assert (meta.status_code, slack.status_code) == (202, 200), (meta.text, slack.text)
    assert set(slack.json()) == {"id", "duplicate"}
