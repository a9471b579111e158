"""The `mfo_*` tasks and `system_notify_task` against the real reference server."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from mfo_client.api import AsyncMFOClient, CircuitBreakerRegistry
from mfo_client.devserver import DevServerSettings
from mfo_client.flows._context import FlowClients, FlowContext, TaskInfo
from mfo_client.flows._errors import MissingClientError, TaskError
from mfo_client.flows.tasks import builtin_registry
from tests._servers import run_devserver

TOKEN = "dev-token"


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with run_devserver(DevServerSettings(port=0, job_duration=0.2)) as url:
        yield url


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    """Plain HTTP to the server, to see what arrived."""
    with httpx.Client(
        base_url=f"{server_url}/api", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
async def mfo(server_url: str) -> AsyncIterator[AsyncMFOClient]:
    async with AsyncMFOClient(
        f"{server_url}/api", auth=TOKEN, breakers=CircuitBreakerRegistry()
    ) as client:
        yield client


def make_ctx(
    task_type: str,
    mfo: AsyncMFOClient | None,
    *,
    data: dict[str, Any] | None = None,
    dependencies: tuple[str, ...] = (),
    task_id: str = "task",
    run_id: str | None = None,
) -> FlowContext:
    """A task of a run of its own unless `run_id` is given: idempotency keys are per run."""
    info = TaskInfo(
        id=task_id,
        name=task_id,
        type=task_type,
        attempt=1,
        dependencies=dependencies,
        flow="f",
        run_id=run_id or f"run-{uuid.uuid4().hex}",
    )
    return FlowContext(data or {}, info, FlowClients(mfo=mfo))


async def run(task_type: str, config: dict[str, Any], ctx: FlowContext) -> Any:
    result = builtin_registry().get(task_type)(config)(ctx)
    return await result if inspect.isawaitable(result) else result


async def test_system_notify_task_creates_a_notification_when_a_server_is_configured(
    mfo: AsyncMFOClient, api: httpx.Client
) -> None:
    config = {
        "recipient": "admin@example.com",
        "message_template": "Event user_created received for user u-1.",
        "channel": "email",
    }
    ctx = make_ctx("system_notify_task", mfo, run_id="notify-run")
    outputs = await run("system_notify_task", config, ctx)
    assert outputs["message"] == "Event user_created received for user u-1."
    stored = api.get(f"/notifications/{outputs['notificationID']}").json()
    assert (stored["recipient"], stored["channel"], stored["message"]) == (
        "admin@example.com",
        "email",
        "Event user_created received for user u-1.",
    )


async def test_mfo_notification_task_sends_and_is_applied_once_per_run_and_task(
    mfo: AsyncMFOClient, api: httpx.Client
) -> None:
    config = {"recipient": "ops-once", "message": "deployed", "metadata": {"v": 2}}
    ctx = make_ctx("mfo_notification_task", mfo, run_id="once-run")
    first = await run("mfo_notification_task", config, ctx)
    retried = await run("mfo_notification_task", config, ctx)
    assert first == retried
    listed = api.get("/notifications", params={"recipient": "ops-once"}).json()["items"]
    assert [n["id"] for n in listed] == [first["notificationID"]]
    assert listed[0]["metadata"] == {"v": 2}
    assert listed[0]["channel"] == "default"


async def test_mfo_event_send_task_sends_the_event(mfo: AsyncMFOClient, api: httpx.Client) -> None:
    config = {
        "event_type": "data.ingested",
        "payload": {"dataID": "d-1"},
        "source": "edge-1",
        "metadata": {"flow": "f"},
    }
    outputs = await run("mfo_event_send_task", config, make_ctx("mfo_event_send_task", mfo))
    stored = api.get(f"/events/{outputs['eventID']}").json()
    assert (stored["type"], stored["payload"], stored["source"], stored["metadata"]) == (
        "data.ingested",
        {"dataID": "d-1"},
        "edge-1",
        {"flow": "f"},
    )


async def test_an_explicit_event_id_is_kept_and_sent_once_across_runs(
    mfo: AsyncMFOClient, api: httpx.Client
) -> None:
    config = {"event_type": "explicit.id", "payload": None, "event_id": "delivery-42"}
    for _ in range(2):  # each call is another run
        outputs = await run("mfo_event_send_task", config, make_ctx("mfo_event_send_task", mfo))
        assert outputs == {"eventID": "delivery-42"}
    assert len(api.get("/events", params={"type": "explicit.id"}).json()["items"]) == 1


async def test_a_retried_event_send_is_stored_once(mfo: AsyncMFOClient, api: httpx.Client) -> None:
    config = {"event_type": "retried.once", "payload": 1}
    ctx = make_ctx("mfo_event_send_task", mfo, run_id="event-run")
    first = await run("mfo_event_send_task", config, ctx)
    again = await run("mfo_event_send_task", config, ctx)
    assert first == again
    assert len(api.get("/events", params={"type": "retried.once"}).json()["items"]) == 1


async def test_mfo_resource_create_task_stores_the_upstream_output(
    mfo: AsyncMFOClient, api: httpx.Client
) -> None:
    data = {"transform": {"output": {"items": [1, 2]}}}
    ctx = make_ctx("mfo_resource_create_task", mfo, data=data, dependencies=("transform",))
    outputs = await run("mfo_resource_create_task", {"resource_type": "processed_data"}, ctx)
    stored = api.get(f"/resources/{outputs['resourceID']}").json()
    assert (stored["type"], stored["content"]) == ("processed_data", {"items": [1, 2]})


async def test_mfo_resource_create_task_stores_all_outputs_without_an_output_key(
    mfo: AsyncMFOClient, api: httpx.Client
) -> None:
    data = {"fetch": {"status": 200, "body": "hi"}, "other": {"x": 1}}
    ctx = make_ctx("mfo_resource_create_task", mfo, data=data, dependencies=("fetch",))
    outputs = await run("mfo_resource_create_task", {"resource_type": "raw"}, ctx)
    stored = api.get(f"/resources/{outputs['resourceID']}").json()
    assert stored["content"] == {"status": 200, "body": "hi"}
    ctx = make_ctx("mfo_resource_create_task", mfo, data=data, dependencies=("fetch", "other"))
    outputs = await run("mfo_resource_create_task", {"resource_type": "raw"}, ctx)
    stored = api.get(f"/resources/{outputs['resourceID']}").json()
    assert stored["content"] == data


async def test_mfo_resource_create_task_explicit_content_wins_even_when_null(
    mfo: AsyncMFOClient, api: httpx.Client
) -> None:
    data = {"transform": {"output": "ignored"}}
    ctx = make_ctx("mfo_resource_create_task", mfo, data=data, dependencies=("transform",))
    config = {"resource_type": "doc", "content": None, "metadata": {"k": "v"}}
    outputs = await run("mfo_resource_create_task", config, ctx)
    stored = api.get(f"/resources/{outputs['resourceID']}").json()
    assert (stored["content"], stored["metadata"]) == (None, {"k": "v"})


async def test_mfo_chat_send_task_posts_to_the_thread(
    mfo: AsyncMFOClient, api: httpx.Client
) -> None:
    config = {
        "thread_id": "team_notifications_thread",
        "message_template": "Data ingestion pipeline for d-1 completed. New resource ID: r-9",
    }
    outputs = await run("mfo_chat_send_task", config, make_ctx("mfo_chat_send_task", mfo))
    messages = api.get("/chat/threads/team_notifications_thread/messages").json()["items"]
    assert [(m["message_id"], m["message"]) for m in messages] == [
        (outputs["messageID"], config["message_template"])
    ]


async def test_mfo_job_create_task_without_waiting_returns_the_queued_job(
    mfo: AsyncMFOClient,
) -> None:
    config = {"job_type": "reindex", "input": {"n": 1}}
    outputs = await run("mfo_job_create_task", config, make_ctx("mfo_job_create_task", mfo))
    assert outputs["status"] == "queued"
    assert outputs["output"] is None
    assert outputs["jobID"]


async def test_mfo_job_create_task_waits_for_the_output(mfo: AsyncMFOClient) -> None:
    config = {"job_type": "reindex", "input": {"n": 1}, "wait": True, "wait_timeout": "10s"}
    outputs = await run("mfo_job_create_task", config, make_ctx("mfo_job_create_task", mfo))
    assert outputs["status"] == "succeeded"
    assert outputs["output"] == {"echo": {"n": 1}, "type": "reindex"}


async def test_a_waited_job_that_fails_fails_the_task_with_the_jobs_error(
    mfo: AsyncMFOClient,
) -> None:
    config = {"job_type": "doomed", "input": {"fail": True}, "wait": True}
    with pytest.raises(TaskError) as info:
        await run("mfo_job_create_task", config, make_ctx("mfo_job_create_task", mfo))
    job_id = info.value.details["jobID"]
    assert info.value.message == (
        f'job {job_id} ("doomed") ended failed: job failed as requested by input.fail'
    )
    assert info.value.details["status"] == "failed"


async def test_a_job_not_done_in_time_fails_the_task_and_a_retry_waits_on_the_same_job(
    mfo: AsyncMFOClient,
) -> None:
    config = {"job_type": "slowish", "wait": True, "wait_timeout": "10ms"}
    ctx = make_ctx("mfo_job_create_task", mfo, run_id="slow-run")
    with pytest.raises(TaskError) as info:
        await run("mfo_job_create_task", config, ctx)
    job_id = info.value.details["jobID"]
    assert info.value.message.startswith(f'job {job_id} ("slowish") did not finish within 10ms')
    retried = await run("mfo_job_create_task", {**config, "wait_timeout": "10s"}, ctx)
    assert (retried["jobID"], retried["status"]) == (job_id, "succeeded")


@pytest.mark.parametrize(
    ("task_type", "config"),
    [
        ("mfo_event_send_task", {"event_type": "x"}),
        ("mfo_resource_create_task", {"resource_type": "x"}),
        ("mfo_chat_send_task", {"thread_id": "t", "message": "m"}),
        ("mfo_job_create_task", {"job_type": "j"}),
        ("mfo_notification_task", {"recipient": "r", "message": "m"}),
    ],
)
async def test_mfo_tasks_need_a_server(task_type: str, config: dict[str, Any]) -> None:
    with pytest.raises(MissingClientError) as info:
        await run(task_type, config, make_ctx(task_type, None))
    assert str(info.value) == (
        f"{task_type} needs the MFO server, and no server is configured "
        "(run with --config FILE, or pass an MFO client to the executor)"
    )
