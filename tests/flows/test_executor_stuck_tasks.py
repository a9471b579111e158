"""Tasks that do not stop when told to: sync tasks past their timeout (Python cannot kill a
thread) and async tasks that swallow their cancellation. The run still ends, never runs two
copies of a task at once, and says what it left behind."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from mfo_client.flows import _executor
from mfo_client.flows._context import FlowContext
from mfo_client.flows._definition import FlowDefinition
from mfo_client.flows._executor import ExecutionOptions, FlowExecutor
from mfo_client.flows._registry import TaskCallable, TaskRegistry
from mfo_client.flows._result import FlowResult, RunStatus, TaskStatus

LEFT_RUNNING = "keeps running in its thread"


def flow(*tasks: dict[str, Any], **extra: Any) -> FlowDefinition:
    return FlowDefinition.model_validate({"name": "stuck", "tasks": list(tasks), **extra})


async def execute(
    tasks: Mapping[str, Callable[[Mapping[str, Any]], TaskCallable]],
    definition: FlowDefinition,
    initial: Mapping[str, Any] | None = None,
    **options: Any,
) -> FlowResult:
    registry = TaskRegistry()
    for name, factory in tasks.items():
        registry.register(name, factory)
    executor = FlowExecutor(registry)
    try:
        return await executor.execute_flow(definition, initial, ExecutionOptions(**options))
    finally:
        executor.close()


def warnings_with(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_a_retry_of_a_timed_out_sync_task_waits_for_the_abandoned_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []

    def slow_first(config: Mapping[str, Any]) -> TaskCallable:
        def run(ctx: FlowContext) -> dict[str, Any]:
            attempt = ctx.task.attempt
            events.append(f"start {attempt}")
            if attempt == 1:
                while not ctx.cancelled:  # a cooperative task: it returns once given up on
                    time.sleep(0.005)
                time.sleep(0.1)  # ... after some cleanup
            events.append(f"end {attempt}")
            return {"attempt": attempt}

        return run

    retry = {"attempts": 2, "backoff": "0s"}
    result = await execute(
        {"slow": slow_first},
        flow({"id": "t", "type": "slow", "timeout": "300ms", "retry": retry}),
    )

    assert result.status is RunStatus.SUCCEEDED
    assert result.tasks["t"].attempts == 2
    assert result.tasks["t"].outputs == {"attempt": 2}
    assert events == ["start 1", "end 1", "start 2", "end 2"]  # never two copies at once
    assert len(warnings_with(caplog, LEFT_RUNNING)) == 1


async def test_a_thread_that_never_ends_fails_the_retry_instead_of_starting_a_copy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    calls: list[int] = []

    def stuck(config: Mapping[str, Any]) -> TaskCallable:
        def run(ctx: FlowContext) -> None:
            calls.append(ctx.task.attempt)
            release.wait(10)

        return run

    retry = {"attempts": 3, "backoff": "0s"}
    try:
        result = await execute(
            {"stuck": stuck}, flow({"id": "t", "type": "stuck", "timeout": "100ms", "retry": retry})
        )
    finally:
        release.set()

    assert result.status is RunStatus.FAILED
    assert calls == [1]
    assert result.tasks["t"].attempts == 3
    assert result.tasks["t"].error == (
        "timed out after 0.1s waiting for the thread of attempt 1 to end (a sync task that "
        "timed out keeps running: Python cannot stop a thread; have the task honour "
        "ctx.deadline or ctx.cancelled)"
    )
    [warning] = warnings_with(caplog, LEFT_RUNNING)
    assert warning.startswith("task t attempt 1 timed out after 0.1s, but its function is sync")


async def test_the_flow_timeout_ends_a_run_whose_sync_task_never_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    saw: list[bool] = []

    def stuck(config: Mapping[str, Any]) -> TaskCallable:
        def run(ctx: FlowContext) -> None:
            release.wait(10)
            saw.append(ctx.cancelled)

        return run

    try:
        result = await execute(
            {"stuck": stuck}, flow({"id": "t", "type": "stuck"}, timeout="150ms")
        )
    finally:
        release.set()
    for _ in range(200):  # the thread ends once released
        if saw:
            break
        await asyncio.sleep(0.01)

    assert result.status is RunStatus.FAILED
    assert result.error == "the flow timed out after 0.15s"
    assert result.tasks["t"].status is TaskStatus.CANCELLED
    assert saw == [True]
    [warning] = warnings_with(caplog, LEFT_RUNNING)
    assert "task t attempt 1 was cancelled" in warning


async def test_tasks_see_the_deadline_of_their_attempt() -> None:
    def remaining(config: Mapping[str, Any]) -> TaskCallable:
        def run(ctx: FlowContext) -> dict[str, Any]:
            deadline = ctx.deadline
            return {"left": None if deadline is None else deadline - time.monotonic()}

        return run

    result = await execute(
        {"remaining": remaining},
        flow(
            {"id": "bounded", "type": "remaining", "timeout": "30s"},
            {"id": "free", "type": "remaining"},
        ),
    )
    assert 0 < result.tasks["bounded"].outputs["left"] <= 30
    assert result.tasks["free"].outputs["left"] is None

    result = await execute(
        {"remaining": remaining}, flow({"id": "in_flow", "type": "remaining"}, timeout="20s")
    )
    assert 0 < result.tasks["in_flow"].outputs["left"] <= 20


class Stubborn:
    """An async task that swallows its first cancellation and keeps going for a while."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    def factory(self, config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
            try:
                await asyncio.sleep(1)
            finally:
                self.ended.set()

        return run


async def test_a_task_swallowing_its_cancellation_cannot_hold_up_a_cancel(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_executor, "CANCEL_GRACE", 0.1)
    stubborn = Stubborn()
    cancel = asyncio.Event()
    run = asyncio.create_task(
        execute(
            {"stubborn": stubborn.factory}, flow({"id": "t", "type": "stubborn"}), cancel=cancel
        )
    )
    await asyncio.sleep(0.05)
    cancel.set()
    result = await run

    assert not stubborn.ended.is_set()  # the run did not wait for it
    assert result.status is RunStatus.CANCELLED
    assert result.tasks["t"].status is TaskStatus.CANCELLED
    assert result.tasks["t"].error == "cancelled"
    [warning] = warnings_with(caplog, "ignored its cancellation")
    assert warning.startswith("task t ignored its cancellation for 0.1s; recorded as cancelled")
    await stubborn.ended.wait()
    assert result.tasks["t"].status is TaskStatus.CANCELLED  # its late end changes nothing


async def test_a_timed_out_task_swallowing_its_cancellation_fails_without_waiting_for_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_executor, "CANCEL_GRACE", 0.1)
    stubborn = Stubborn()
    result = await execute(
        {"stubborn": stubborn.factory}, flow({"id": "t", "type": "stubborn", "timeout": "50ms"})
    )

    assert not stubborn.ended.is_set()
    assert result.tasks["t"].status is TaskStatus.FAILED
    assert result.tasks["t"].error == "timed out after 0.05s"
    [warning] = warnings_with(caplog, "ignored its cancellation")
    assert warning.startswith("task t attempt 1 timed out and then ignored its cancellation")
    await stubborn.ended.wait()


async def test_a_task_named_like_an_initial_context_key_fails_the_run_before_it_starts() -> None:
    ran: list[str] = []

    def record(config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> None:
            ran.append(ctx.task.id)

        return run

    definition = flow(
        {"id": "input", "type": "record", "successors": ["after"]},
        {"id": "after", "type": "record"},
    )
    result = await execute({"record": record}, definition, {"input": {"id": 1}, "other": 2})

    assert result.status is RunStatus.FAILED
    assert result.error == (
        'flow "stuck": task "input" has the name of the initial context\'s key "input", so its '
        "outputs would hide that input from every task after it; rename the task"
    )
    assert ran == []
    assert {r.status for r in result.tasks.values()} == {TaskStatus.SKIPPED}

    result = await execute({"record": record}, definition, {"other": 2})
    assert result.succeeded
    assert ran == ["input", "after"]
