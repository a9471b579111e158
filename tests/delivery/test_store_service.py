"""`mfo serve` and the operator commands on either store backend, end to end.

The real service (listener, forwarders, flow runner) under uvicorn, the reference MFO server,
and the store the configuration names: `build_store` picks SQLite or Redis from `store.backend`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from mfo_client.cli import app
from mfo_client.config import Config, ConfigError
from mfo_client.delivery import IncomingEvent, RedisStore, SQLiteStore
from mfo_client.devserver import DevServerSettings
from mfo_client.flows import RunState, open_history
from mfo_client.service import build_store
from tests._servers import run_devserver, run_service
from tests._stores import StoreKit

SECRET = "store-secret"
TOKEN = "dev-token"
WAIT = 15.0
FLOW = """\
name: "Record"
tasks:
  - id: "store"
    type: "mfo_resource_create_task"
    config:
      resource_type: "activity"
      content: {repository: "{{.repository}}"}
"""


@pytest.fixture
def mfo_url() -> Iterator[str]:
    with run_devserver(DevServerSettings(port=0)) as url:
        yield url


def make_config(kit: StoreKit, mfo_url: str, **extra: Any) -> Config:
    return Config.from_mapping(
        {
            "client": {"base_url": f"{mfo_url}/api", "auth_token": TOKEN, "timeout": "5s"},
            "webhook_listener": {"port": 0, "secret_key": SECRET},
            "store": kit.config(),
            "delivery": {"initial_backoff": "50ms", "max_backoff": "100ms"},
            "flows": {"history": str(kit.tmp_path / "runs.db")},
            **extra,
        },
        env={},
    )


async def post(url: str, payload: dict[str, Any], delivery: str) -> httpx.Response:
    body = json.dumps({"type": "push", "payload": payload}).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Delivery": delivery,
    }
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{url}/webhook", content=body, headers=headers)


async def until(check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT
    while not (found := await check()):
        assert time.monotonic() < deadline, f"condition not reached in {WAIT} s"
        await asyncio.sleep(0.05)
    return found


async def forwarded(mfo_url: str, event_id: str) -> dict[str, Any]:
    async def fetch() -> dict[str, Any] | None:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(
                f"{mfo_url}/api/events/{event_id}", headers={"Authorization": f"Bearer {TOKEN}"}
            )
        return response.json() if response.status_code == 200 else None

    found: dict[str, Any] = await until(fetch)
    return found


def test_the_config_picks_the_backend(kit: StoreKit) -> None:
    store = build_store(Config.from_mapping({"store": kit.config()}, env={}))
    assert isinstance(store, SQLiteStore if kit.backend == "sqlite" else RedisStore)


@pytest.mark.parametrize(
    ("store", "problem"),
    [
        ({"backend": "redis"}, "store: backend redis needs url, e.g. url: redis://"),
        ({"backend": "redis", "url": "http://h:1"}, "store.url: must be a redis://, rediss://"),
        ({"url": "redis://h:1/0"}, "store: url is only used by backend redis; set backend: redis"),
        (
            {"backend": "redis", "url": "redis://h:1/0", "fsync": "full"},
            "store: fsync is a sqlite setting; with backend redis, durability is the Redis",
        ),
        ({"backend": "redis", "url": "redis://h/0", "prefix": "a b"}, "store.prefix: must be 1 to"),
        (
            {"backend": "redis", "url": "redis://h/0", "wait_replicas": 1, "wait_timeout": 0},
            "store: wait_timeout must be above 0 with wait_replicas",
        ),
    ],
)
def test_store_settings_that_do_not_fit_the_backend_are_refused(
    store: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_mapping({"store": store}, env={})
    assert problem in str(refused.value)


def test_the_redis_url_is_a_secret() -> None:
    url = "redis://:hunter2@redis.internal:6379/0"
    config = Config.from_mapping({"store": {"backend": "redis", "url": url}}, env={})
    assert config.redacted_dict()["store"]["url"] == "***"
    assert "hunter2" not in repr(config)
    with pytest.raises(ConfigError) as refused:
        Config.from_mapping({"store": {"backend": "redis", "url": "http://:hunter2@h"}}, env={})
    assert "hunter2" not in str(refused.value)


async def test_an_event_is_acknowledged_forwarded_and_runs_its_flow(
    kit: StoreKit, mfo_url: str
) -> None:
    flow = kit.tmp_path / "record.yaml"
    flow.write_text(FLOW)
    trigger = {
        "name": "activity",
        "match": {"type": "push"},
        "flow": str(flow),
        "input": {"repository": "payload.repository"},
        "dedupe": "payload.after",
    }
    config = make_config(kit, mfo_url, triggers=[trigger])
    with run_service(config) as (url, _):
        first = await post(url, {"repository": "octo/hello", "after": "abc"}, "d-1")
        repeat = await post(url, {"repository": "octo/hello", "after": "abc"}, "d-1")
        same_key = await post(url, {"repository": "octo/other", "after": "abc"}, "d-2")
        assert (first.status_code, repeat.status_code, same_key.status_code) == (202, 202, 202)
        answer = first.json()
        assert repeat.json()["id"] == answer["id"] and repeat.json()["duplicate"] is True
        [run] = answer["runs"]
        assert same_key.json()["runs"][0]["run_id"] == run["run_id"]  # deduped per trigger
        event = await forwarded(mfo_url, answer["id"])
        await forwarded(mfo_url, same_key.json()["id"])

        async def finished() -> Any:
            async with open_history(config) as history:  # the run history of that backend
                record = await history.get_run(run["run_id"])
            return record if record is not None and record.status.is_final else None

        record = await until(finished)
    assert event["type"] == "push" and event["payload"]["repository"] == "octo/hello"
    assert record.status is RunState.SUCCEEDED, record
    assert record.event_id == answer["id"]


async def test_events_accepted_by_one_service_are_forwarded_by_another(
    kit: StoreKit, mfo_url: str
) -> None:
    """An intake-only process and a worker process share the store (on Redis, at once)."""
    config = make_config(kit, mfo_url)
    with run_service(config, workers=False) as (intake, _):
        ids = [(await post(intake, {"n": n}, f"d-{n}")).json()["id"] for n in range(5)]
    with run_service(config) as _:
        for id in ids:
            await forwarded(mfo_url, id)


def test_outbox_and_dlq_commands_read_the_configured_backend(kit: StoreKit) -> None:
    file = kit.tmp_path / "mfo.yaml"
    file.write_text(json.dumps({"store": kit.config()}))  # JSON is YAML

    async def seed() -> None:
        async with kit.store(clock=time.time) as store:
            for n in range(3):
                await store.accept(
                    IncomingEvent(
                        id=f"e{n}",
                        source="github",
                        delivery_id=f"d{n}",
                        event={"type": "push", "data": {"n": n}},
                        raw_body=b"{}",
                        headers={},
                        received_at=time.time(),
                    )
                )
            [lease] = await store.lease("w", 1, 60)
            await store.dead_letter(lease, "422 from the server")

    asyncio.run(seed())
    runner = CliRunner()
    stats = runner.invoke(app, ["outbox", "stats", "--json", "--config", str(file)])
    assert stats.exit_code == 0, stats.output
    assert (json.loads(stats.stdout)["pending"], json.loads(stats.stdout)["dead"]) == (2, 1)
    listed = runner.invoke(app, ["dlq", "list", "--json", "--config", str(file)])
    assert [(d["id"], d["last_error"]) for d in json.loads(listed.stdout)] == [
        ("e0", "422 from the server")
    ]
    replayed = runner.invoke(app, ["dlq", "replay", "e0", "--config", str(file)])
    assert replayed.exit_code == 0 and "Replayed 1 dead letter" in replayed.stdout
    stats = runner.invoke(app, ["outbox", "stats", "--json", "--config", str(file)])
    assert (json.loads(stats.stdout)["pending"], json.loads(stats.stdout)["dead"]) == (3, 0)
