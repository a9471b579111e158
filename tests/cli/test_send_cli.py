"""`mfo send FILE`: signed deliveries to a real `mfo serve` listener, forwarded to the real
reference server; refusals and usage errors with their exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner, Result

from mfo_client.cli import app
from mfo_client.config import Config
from mfo_client.devserver import DevServerSettings
from tests._servers import free_port, run_devserver, run_service

ROOT = Path(__file__).parent.parent.parent
PUSH = ROOT / "tests" / "data" / "github" / "push.new_branch.json"
QUICKSTART = ROOT / "examples" / "events" / "default" / "quickstart_event.json"
TOKEN = "dev-token"
GITHUB_SECRET = "send-cli-github-secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WAIT = 5.0

runner = CliRunner()


def settings(devserver: str, store: Path, port: int) -> dict[str, Any]:
    """The configuration as data: the default GitHub source and a Standard Webhooks one."""
    return {
        "client": {"base_url": f"{devserver}/api", "auth_token": TOKEN},
        "webhook_listener": {
            "host": "127.0.0.1",
            "port": port,
            "secret_key": GITHUB_SECRET,
            "sources": [
                {
                    "name": "billing",
                    "path": "/billing",
                    "scheme": "standard",
                    "secret": STANDARD_SECRET,
                }
            ],
        },
        "store": {"path": str(store)},
        "delivery": {"initial_backoff": "10ms", "max_backoff": "50ms"},
    }


@pytest.fixture(autouse=True)
def no_machine_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The MFO_* settings of the machine running the tests must not reach the commands."""
    for name in list(os.environ):
        if name.upper().startswith("MFO_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def devserver() -> Iterator[str]:
    with run_devserver(DevServerSettings(port=0)) as url:
        yield url


@pytest.fixture(scope="module")
def listener(devserver: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("send") / "mfo.db"
    config = Config.from_mapping(settings(devserver, store, port=0), env={})
    with run_service(config, workers=True) as (url, _):
        yield url


@pytest.fixture(scope="module")
def config_file(listener: str, devserver: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same configuration as a file, written once the listener's real port is known."""
    port = httpx.URL(listener).port
    assert port is not None
    data = settings(devserver, tmp_path_factory.mktemp("unused") / "mfo.db", port)
    path = tmp_path_factory.mktemp("config") / "mfo.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def mfo_send(*args: str | Path) -> Result:
    return runner.invoke(app, ["send", *map(str, args)])


def accepted_id(result: Result) -> str:
    """The event id from the listener's 202 answer as `mfo send` printed it."""
    assert result.exit_code == 0, (result.stdout, result.stderr)
    status, body = result.stdout.splitlines()
    assert status == "202 Accepted"
    answer = json.loads(body)
    assert answer["duplicate"] is False
    event_id: str = answer["id"]
    return event_id


def forwarded(devserver: str, event_id: str) -> dict[str, Any]:
    """The event as the reference server stored it, once forwarded (bounded wait)."""
    deadline = time.monotonic() + WAIT
    with httpx.Client(timeout=10) as http:
        while True:
            response = http.get(
                f"{devserver}/api/events/{event_id}",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            if response.status_code == 200:
                event: dict[str, Any] = response.json()
                return event
            assert response.status_code == 404, response.text
            assert time.monotonic() < deadline, f"event {event_id} was not forwarded in {WAIT} s"
            time.sleep(0.02)


def test_github_delivery_by_url_is_forwarded_as_push(listener: str, devserver: str) -> None:
    # No --type: the file name, push.new_branch.json, says the event.
    result = mfo_send(PUSH, "--url", f"{listener}/webhook", "--secret", GITHUB_SECRET)

    event = forwarded(devserver, accepted_id(result))
    assert event["type"] == "push"
    assert event["payload"] == json.loads(PUSH.read_bytes())
    webhook = event["metadata"]["webhook"]
    assert (webhook["provider_event"], webhook["scheme"], webhook["verified"]) == (
        "push",
        "github",
        True,
    )
    uuid.UUID(webhook["delivery_id"])  # a fresh X-GitHub-Delivery


def test_default_source_from_config_as_a_real_process(config_file: Path, devserver: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MFO_")}
    env["MFO_CONFIG"] = str(config_file)

    done = subprocess.run(
        [sys.executable, "-m", "mfo_client", "send", str(PUSH), "--delivery-id", "send-cli-1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "202 Accepted",
        json.dumps({"id": "send-cli-1", "duplicate": False}, separators=(",", ":")),
    ]
    event = forwarded(devserver, "send-cli-1")
    assert (event["type"], event["source"]) == ("push", "default")


def test_seed_style_body_names_its_own_type(config_file: Path, devserver: str) -> None:
    result = mfo_send(QUICKSTART, "--config", config_file, "--type", "manual")

    event = forwarded(devserver, accepted_id(result))
    assert event["type"] == "user_created"
    assert event["payload"] == {"id": "user123", "email": "test@example.com"}
    assert event["metadata"]["webhook"]["provider_event"] == "manual"


def test_form_delivery(listener: str, devserver: str) -> None:
    result = mfo_send(
        PUSH, "--url", f"{listener}/webhook", "--secret", GITHUB_SECRET, "--content-type", "form"
    )

    event = forwarded(devserver, accepted_id(result))
    assert event["type"] == "push"
    assert event["payload"] == json.loads(PUSH.read_bytes())


def test_standard_webhooks_source_by_name(
    config_file: Path, devserver: str, tmp_path: Path
) -> None:
    invoice = tmp_path / "invoice.paid.json"
    invoice.write_bytes(
        b'{"type":"invoice.paid","timestamp":"2024-01-01T00:00:00Z","data":{"n":1}}'
    )

    result = mfo_send(
        invoice, "--config", config_file, "--source", "billing", "--delivery-id", "msg_send_1"
    )

    assert accepted_id(result) == "msg_send_1"  # the signed webhook-id is the delivery id
    event = forwarded(devserver, "msg_send_1")
    assert (event["type"], event["source"]) == ("invoice.paid", "billing")
    assert event["payload"] == json.loads(invoice.read_bytes())
    assert event["metadata"]["webhook"]["scheme"] == "standard"


def test_wrong_secret_is_refused_with_401(config_file: Path) -> None:
    result = mfo_send(PUSH, "--config", config_file, "--secret", "not-the-secret")

    assert result.exit_code == 1
    status, body = result.stdout.splitlines()
    assert status == "401 Unauthorized"
    assert json.loads(body)["error"]["code"] == "invalid_signature"


def test_wrong_scheme_is_refused_with_401(config_file: Path) -> None:
    result = mfo_send(
        PUSH, "--config", config_file, "--source", "billing", "--scheme", "github", "--secret", "x"
    )

    assert result.exit_code == 1
    assert result.stdout.startswith("401 ")


def test_unknown_source_lists_the_configured_ones(config_file: Path) -> None:
    result = mfo_send(PUSH, "--config", config_file, "--source", "nope")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert 'no webhook source is named "nope"' in result.stderr
    assert '"default" (/webhook), "billing" (/billing)' in result.stderr


def test_connection_refused_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port()

    result = mfo_send(PUSH, "--url", f"http://127.0.0.1:{port}/webhook", "--secret", "s")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot connect to http://127.0.0.1:{port}/webhook: Connection refused\n"
    )


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"

    result = mfo_send(missing, "--url", "http://127.0.0.1:9/webhook", "--secret", "s")

    assert result.exit_code == 2
    assert result.stderr == f"error: cannot read {missing}: No such file or directory\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --url URL, or --config FILE"),
        (["--url", "http://127.0.0.1:9/w"], "scheme 'github' signs with a secret: give --secret"),
        (["--url", "127.0.0.1:9/w", "--secret", "s"], "must be an http:// or https:// URL"),
        (["--url", "http://h/w", "--source", "x"], "--source names a configured source"),
        (
            ["--url", "http://h/w", "--scheme", "standard", "--secret", "whsec_"],
            "empty after its 'whsec_' prefix",
        ),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = mfo_send(PUSH, *args)

    assert result.exit_code == 2
    assert message in result.stderr


def test_port_0_in_the_config_needs_a_url(tmp_path: Path) -> None:
    config = tmp_path / "mfo.yaml"
    config.write_text("webhook_listener:\n  port: 0\n  secret_key: k\n", encoding="utf-8")

    result = mfo_send(PUSH, "--config", config)

    assert result.exit_code == 2
    assert "port is 0" in result.stderr
