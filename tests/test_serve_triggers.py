"""`mfo serve` with triggers: accepted events start flow runs, against the real reference server.

Each test runs the real service (listener, forwarder, flow runner, SQLite store and run
history) under uvicorn, and the reference MFO server; the flows call that server for real.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mfo_client.config import Config
from mfo_client.devserver import DevServerSettings
from mfo_client.flows import RunRecord, RunState, open_history
from mfo_client.service import Service, ServiceConfigError
from tests._servers import free_port, run_app, run_devserver, run_service
from tests._stores import StoreKit

SECRET = "trigger-secret"
TOKEN = "dev-token"
WAIT = 15.0

RESOURCE_FLOW = """\
name: "Record"
tasks:
  - id: "store"
    type: "mfo_resource_create_task"
    config:
      resource_type: "activity"
      content: {repository: "{{.repository}}", author: "{{.author}}"}
    successors: ["say"]
  - id: "say"
    type: "mfo_chat_send_task"
    config:
      thread_id: "activity"
      message_template: "{{.repository}} by {{.author}}: resource {{.store.resourceID}}"
"""
LOG_FLOW = """\
name: "LogOnly"
tasks:
  - id: "log"
    type: "simple_log_task"
    config: {log_message: "user {{.input.id}}"}
  - id: "shape"
    type: "data_transform_task"
    config:
      mapping: {user: "input.id", kind: "event.type"}
"""
FETCH_FLOW = """\
name: "Fetch"
tasks:
  - id: "fetch"
    type: "http_get_task"
    config: {url: "{{.input.url}}", timeout: "10s"}
"""
FAILING_FLOW = """\
name: "Failing"
tasks:
  - id: "fetch"
    type: "http_get_task"
    config: {url: "http://127.0.0.1:{{.input.port}}/", timeout: "1s"}
"""


def signed(body: bytes, delivery: str) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Delivery": delivery,
    }


def seed_event(type_: str, payload: Any) -> bytes:
    return json.dumps({"type": type_, "payload": payload}).encode()


@pytest.fixture
def mfo_url() -> Iterator[str]:
    with run_devserver(DevServerSettings(port=0)) as url:
        yield url


@pytest.fixture
async def api(mfo_url: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=mfo_url, headers=headers, timeout=10) as client:
        yield client


def flow_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def make_config(
    tmp_path: Path,
    mfo_url: str,
    triggers: list[dict[str, Any]],
    kit: StoreKit | None = None,
    **extra: Any,
) -> Config:
    store = kit.config() if kit is not None else {"path": str(tmp_path / "outbox.db")}
    return Config.from_mapping(
        {
            "client": {"base_url": f"{mfo_url}/api", "auth_token": TOKEN, "timeout": "5s"},
            "webhook_listener": {"port": 0, "secret_key": SECRET},
            "store": store,
            "delivery": {"initial_backoff": "100ms", "max_backoff": "200ms"},
            "flows": {"history": str(tmp_path / "runs.db"), **extra.pop("flows", {})},
            "triggers": triggers,
            **extra,
        },
        env={},
    )


async def finished(config: Config, run_id: str) -> RunRecord:
    """The run once it has ended (bounded wait), read from the run history file."""
    deadline = time.monotonic() + WAIT
    async with open_history(config) as history:
        while True:
            record = await history.get_run(run_id)
            if record is not None and record.status.is_final:
                return record
            assert time.monotonic() < deadline, f"run {run_id} did not end in {WAIT} s: {record}"
            await asyncio.sleep(0.05)


async def post(url: str, body: bytes, delivery: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{url}/webhook", content=body, headers=signed(body, delivery))


async def test_a_triggered_flow_creates_the_resource_and_the_message_at_the_server(
    tmp_path: Path, mfo_url: str, kit: StoreKit, api: httpx.AsyncClient
) -> None:
    trigger = {
        "name": "activity",
        "match": {"type": "push"},
        "flow": flow_file(tmp_path, "record", RESOURCE_FLOW),
        "input": {"repository": "payload.repository", "author": "payload.pusher"},
    }
    config = make_config(tmp_path, mfo_url, [trigger], kit)
    body = seed_event("push", {"repository": "octo/hello", "pusher": "mona"})
    with run_service(config) as (url, _):
        response = await post(url, body, "d-1")
        assert response.status_code == 202
        answer = response.json()
        (run,) = answer["runs"]
        assert run["trigger"] == "activity" and run["duplicate"] is False
        record = await finished(config, run["run_id"])
    assert record.status is RunState.SUCCEEDED, record
    assert record.trigger == "activity" and record.event_id == answer["id"]
    resource_id = record.task("store").outputs["resourceID"]  # type: ignore[union-attr]
    resource = (await api.get(f"/api/resources/{resource_id}")).json()
    assert resource["content"] == {"repository": "octo/hello", "author": "mona"}
    messages = (await api.get("/api/chat/threads/activity/messages")).json()["items"]
    assert [m["message"] for m in messages] == [f"octo/hello by mona: resource {resource_id}"]
    assert (await api.get(f"/api/events/{answer['id']}")).status_code == 200  # forwarded too


async def test_dedupe_makes_one_run_per_key_however_many_deliveries_carry_it(
    tmp_path: Path, mfo_url: str, kit: StoreKit, api: httpx.AsyncClient
) -> None:
    trigger = {
        "name": "per-commit",
        "match": {"type": "push"},
        "flow": flow_file(tmp_path, "record", RESOURCE_FLOW),
        "input": {"repository": "payload.repository", "author": "payload.pusher"},
        "dedupe": "payload.after",
    }
    config = make_config(tmp_path, mfo_url, [trigger], kit)
    first = seed_event("push", {"repository": "o/r", "pusher": "a", "after": "abc1"})
    again = seed_event("push", {"repository": "o/r", "pusher": "b", "after": "abc1"})
    other = seed_event("push", {"repository": "o/r", "pusher": "c", "after": "def2"})
    with run_service(config) as (url, _):
        runs = [
            (await post(url, b, f"d-{n}")).json()["runs"][0]
            for n, b in enumerate([first, again, other])
        ]
        for run in runs:
            await finished(config, run["run_id"])
    assert [r["duplicate"] for r in runs] == [False, True, False]
    assert runs[1]["run_id"] == runs[0]["run_id"] != runs[2]["run_id"]
    resources = (await api.get("/api/resources")).json()["items"]
    assert sorted(r["content"]["author"] for r in resources) == ["a", "c"]


async def test_respond_outputs_answers_with_the_flow_outputs(
    tmp_path: Path, mfo_url: str, kit: StoreKit
) -> None:
    trigger = {
        "name": "answer",
        "match": {"type": "user_created"},
        "flow": flow_file(tmp_path, "log", LOG_FLOW),
        "respond": "outputs",
    }
    config = make_config(tmp_path, mfo_url, [trigger], kit)
    with run_service(config) as (url, _):
        response = await post(url, seed_event("user_created", {"id": "u7"}), "d-1")
    assert response.status_code == 200, response.text
    body = response.json()
    (run,) = body["runs"]
    assert run["trigger"] == "answer" and run["status"] == "succeeded"
    assert run["outputs"]["shape"]["output"] == {"user": "u7", "kind": "user_created"}
    assert run["outputs"]["log"]["message"] == "user u7"


async def test_respond_outputs_gives_202_with_the_run_id_when_the_flow_is_slow(
    tmp_path: Path, mfo_url: str, kit: StoreKit
) -> None:
    release = threading.Event()  # set from this test; the handler runs in run_app's thread

    async def slow(_: Request) -> JSONResponse:
        deadline = time.monotonic() + 20
        while not release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return JSONResponse({"ok": True})

    with run_app(Starlette(routes=[Route("/slow", slow)])) as slow_url:
        trigger = {
            "name": "slow",
            "flow": flow_file(tmp_path, "fetch", FETCH_FLOW),
            "respond": "outputs",
            "respond_timeout": "300ms",
        }
        flows = {"tasks": {"http_get_task": {"allow_hosts": ["127.0.0.1"]}}}
        config = make_config(tmp_path, mfo_url, [trigger], kit, flows=flows)
        with run_service(config) as (url, _):
            body = seed_event("fetch", {"url": f"{slow_url}/slow"})
            response = await post(url, body, "d-1")
            assert response.status_code == 202, response.text
            (run,) = response.json()["runs"]
            assert run["status"] == "running"
            release.set()
            record = await finished(config, run["run_id"])
    assert record.status is RunState.SUCCEEDED
    assert record.task("fetch").outputs["body"] == {"ok": True}  # type: ignore[union-attr]


async def test_a_failed_flow_does_not_block_forwarding(
    tmp_path: Path, mfo_url: str, kit: StoreKit, api: httpx.AsyncClient
) -> None:
    trigger = {"name": "fails", "flow": flow_file(tmp_path, "failing", FAILING_FLOW)}
    flows = {"tasks": {"http_get_task": {"allow_hosts": ["127.0.0.1"]}}}
    config = make_config(tmp_path, mfo_url, [trigger], kit, flows=flows)
    with run_service(config) as (url, _):
        answer = (await post(url, seed_event("x", {"port": free_port()}), "d-1")).json()
        record = await finished(config, answer["runs"][0]["run_id"])
        deadline = time.monotonic() + WAIT
        while (await api.get(f"/api/events/{answer['id']}")).status_code != 200:
            assert time.monotonic() < deadline, "the event was not forwarded"
            await asyncio.sleep(0.05)
    assert record.status is RunState.FAILED
    assert "fetch" in (record.error or "")


async def test_flows_that_need_no_server_run_while_the_server_is_down(
    tmp_path: Path, kit: StoreKit
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    trigger = {"name": "local", "flow": flow_file(tmp_path, "log", LOG_FLOW)}
    config = make_config(tmp_path, down, [trigger], kit)
    with run_service(config) as (url, _):
        answer = (await post(url, seed_event("user_created", {"id": "u1"}), "d-1")).json()
        record = await finished(config, answer["runs"][0]["run_id"])
        async with kit.beside() as store:  # as `mfo outbox stats` would look
            stats = await store.stats()
    assert record.status is RunState.SUCCEEDED
    assert stats.delivered == 0 and stats.pending + stats.in_flight == 1


async def test_an_event_that_does_not_fit_the_input_mapping_is_a_failed_run_on_record(
    tmp_path: Path, mfo_url: str, kit: StoreKit
) -> None:
    trigger = {
        "name": "strict",
        "flow": flow_file(tmp_path, "log", LOG_FLOW),
        "input": {"input": "payload.user"},
    }
    config = make_config(tmp_path, mfo_url, [trigger], kit)
    with run_service(config) as (url, _):
        answer = (await post(url, seed_event("user_created", {"id": "u1"}), "d-1")).json()
        record = await finished(config, answer["runs"][0]["run_id"])
    assert record.status is RunState.FAILED
    assert "triggers[strict].input.input" in (record.error or "")
    assert record.event_id == answer["id"]


async def test_metrics_count_runs_by_trigger_and_status(
    tmp_path: Path, mfo_url: str, kit: StoreKit
) -> None:
    trigger = {"name": "counted", "flow": flow_file(tmp_path, "log", LOG_FLOW)}
    config = make_config(tmp_path, mfo_url, [trigger], kit)
    with run_service(config) as (url, _):
        for n in range(2):
            answer = (await post(url, seed_event("e", {"id": n}), f"d-{n}")).json()
            await finished(config, answer["runs"][0]["run_id"])
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + WAIT
            while True:  # the job is settled just after the run is on record
                text = (await http.get(f"{url}/metrics")).text
                line = 'mfo_flow_runs_total{status="succeeded",trigger="counted"} 2.0'
                if line in text or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
    assert line in text
    assert 'mfo_flow_jobs{state="done"} 2.0' in text
    assert (
        'mfo_flow_task_duration_seconds_count{status="succeeded",task="log",trigger="counted"} 2.0'
        in text
    )


def test_a_broken_trigger_stops_the_start_with_every_problem(tmp_path: Path) -> None:
    triggers = [
        {"name": "missing", "flow": str(tmp_path / "nope.yaml")},
        {"name": "bad", "flow": flow_file(tmp_path, "log", LOG_FLOW), "dedupe": "payload.("},
    ]
    config = make_config(tmp_path, "http://127.0.0.1:9", triggers)
    with pytest.raises(ServiceConfigError) as info:
        Service(config)
    text = str(info.value)
    assert text.startswith("the triggers cannot run:")
    assert "triggers[missing].flow: no flow file" in text
    assert "triggers[bad].dedupe:" in text


async def test_a_trigger_runs_at_most_its_concurrency_at_once(
    tmp_path: Path, mfo_url: str, kit: StoreKit
) -> None:
    state = {"now": 0, "most": 0, "served": 0}

    async def counted(_: Request) -> JSONResponse:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        await asyncio.sleep(0.2)
        state["now"] -= 1
        state["served"] += 1
        return JSONResponse({"ok": True})

    with run_app(Starlette(routes=[Route("/count", counted)])) as count_url:
        trigger = {
            "name": "limited",
            "flow": flow_file(tmp_path, "fetch", FETCH_FLOW),
            "concurrency": 2,
        }
        flows = {"tasks": {"http_get_task": {"allow_hosts": ["127.0.0.1"]}}}
        config = make_config(tmp_path, mfo_url, [trigger], kit, flows=flows)
        with run_service(config) as (url, _):
            body = seed_event("fetch", {"url": f"{count_url}/count"})
            answers = await asyncio.gather(*(post(url, body, f"d-{n}") for n in range(6)))
            records = [await finished(config, a.json()["runs"][0]["run_id"]) for a in answers]
    assert all(r.status is RunState.SUCCEEDED for r in records)
    assert state["served"] == 6
    assert state["most"] == 2  # never more than the trigger's concurrency, and it was reached
