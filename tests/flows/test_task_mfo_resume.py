"""Idempotency keys of the `mfo_*` tasks across retries and resumes, on the reference server:
the same request is applied once, a request whose content changed is a new one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
import pytest

from mfo_client.api import AsyncMFOClient, CircuitBreakerRegistry
from mfo_client.devserver import DevServerSettings
from mfo_client.flows import (
    ExecutionOptions,
    FlowClients,
    FlowExecutor,
    FlowResult,
    build_flow,
    parse_flow,
)
from mfo_client.flows._context import FlowContext, TaskInfo
from mfo_client.flows.tasks import builtin_registry
from mfo_client.flows.tasks._common import idempotency_key
from tests._servers import run_devserver

TOKEN = "dev-token"
FLOW = """\
name: Store
tasks:
  - id: up
    type: data_transform_task
    config: {expression: "value", source: input}
    successors: [store]
  - id: store
    type: mfo_resource_create_task
    config: {resource_type: "{{ input.kind }}", content: "{{ up.output }}"}
"""


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with run_devserver(DevServerSettings(port=0)) as url:
        yield url


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{server_url}/api", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
async def executor(server_url: str) -> AsyncIterator[FlowExecutor]:
    async with AsyncMFOClient(
        f"{server_url}/api", auth=TOKEN, breakers=CircuitBreakerRegistry()
    ) as mfo:
        flows = FlowExecutor(builtin_registry(), clients=FlowClients(mfo=mfo))
        try:
            yield flows
        finally:
            flows.close()


async def run(
    executor: FlowExecutor,
    text: str,
    initial: Mapping[str, Any],
    run_id: str,
    restored: Mapping[str, Mapping[str, Any]] | None = None,
) -> FlowResult:
    definition = build_flow(parse_flow(text), builtin_registry()).definition
    options = ExecutionOptions(run_id=run_id, restored=restored or {})
    return await executor.execute_flow(definition, initial, options)


def stored(api: httpx.Client, kind: str) -> list[Any]:
    items = api.get("/resources", params={"type": kind}).json()["items"]
    return sorted(item["content"] for item in items)


async def test_a_resume_with_the_same_content_is_applied_once(
    executor: FlowExecutor, api: httpx.Client
) -> None:
    kind = f"same-{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4().hex
    first = await run(executor, FLOW, {"input": {"value": "a", "kind": kind}}, run_id)
    assert first.succeeded, first.error
    # The run crashed after the call, before the task's end was recorded: resumed, the task
    # runs again with the same content.
    resumed = await run(
        executor,
        FLOW,
        {"input": {"value": "a", "kind": kind}},
        run_id,
        restored={"up": first.tasks["up"].outputs},
    )
    assert resumed.succeeded, resumed.error
    assert resumed.tasks["store"].outputs == first.tasks["store"].outputs
    assert stored(api, kind) == ["a"]


async def test_a_resume_whose_content_changed_sends_a_new_request(
    executor: FlowExecutor, api: httpx.Client
) -> None:
    kind = f"changed-{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4().hex
    first = await run(executor, FLOW, {"input": {"value": "a", "kind": kind}}, run_id)
    assert first.succeeded, first.error
    # Resumed with an upstream output that differs now: the same key with another body would
    # be refused for good (422 idempotency_key_reused); it is another request.
    resumed = await run(
        executor,
        FLOW,
        {"input": {"value": "a", "kind": kind}},
        run_id,
        restored={"up": {"output": "b"}},
    )
    assert resumed.succeeded, resumed.error
    assert resumed.tasks["store"].outputs != first.tasks["store"].outputs
    assert stored(api, kind) == ["a", "b"]


async def test_each_for_each_item_is_its_own_request(
    executor: FlowExecutor, api: httpx.Client
) -> None:
    recipient = f"each-{uuid.uuid4().hex[:8]}"
    text = f"""\
name: Each
tasks:
  - id: tell
    type: mfo_notification_task
    for_each: "input.messages"
    config: {{recipient: "{recipient}", message: "{{{{ item }}}}"}}
"""
    run_id = uuid.uuid4().hex
    messages = {"input": {"messages": ["one", "two", "two"]}}
    result = await run(executor, text, messages, run_id)
    assert result.succeeded, result.error
    again = await run(executor, text, messages, run_id)  # a resume: nothing sent twice
    assert again.tasks["tell"].outputs == result.tasks["tell"].outputs

    listed = api.get("/notifications", params={"recipient": recipient}).json()["items"]
    assert sorted(n["message"] for n in listed) == ["one", "two", "two"]


def test_keys_name_the_run_task_and_item_and_stay_within_the_api_limit() -> None:
    def key(run_id: str, task_id: str, index: int | None, body: Any) -> str | None:
        info = TaskInfo(id=task_id, name=task_id, type="t", attempt=1, run_id=run_id, index=index)
        return idempotency_key(FlowContext({}, info), body)

    plain = key("r1", "store", None, {"a": 1, "b": [1, 2]})
    assert plain is not None and plain.startswith("r1:store:")
    assert key("r1", "store", None, {"b": [1, 2], "a": 1}) == plain  # key order does not matter
    assert key("r1", "store", None, {"a": 2, "b": [1, 2]}) != plain
    assert (key("r1", "store", 3, {"a": 1}) or "").startswith("r1:store[3]:")
    assert key("", "store", None, {"a": 1}) is None  # outside a recorded run
    long = key("r" * 200, "t" * 200, None, {})
    assert long is not None and len(long) <= 255 and long.startswith("flow:")
