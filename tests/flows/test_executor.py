"""The executor on flows of test tasks: order, limits, retries, timeouts, skips, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from mfo_client.flows._context import FlowContext
from mfo_client.flows._definition import FlowDefinition
from mfo_client.flows._errors import TaskError
from mfo_client.flows._executor import ExecutionOptions, FlowExecutor, run_flow
from mfo_client.flows._registry import TaskCallable, TaskRegistry
from mfo_client.flows._result import RunStatus, TaskStatus


class Recorder:
    """Test task types that record what ran, when, and how many ran at once."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.in_flight = 0
        self.peak = 0
        self.calls: dict[str, int] = {}
        self.registry = TaskRegistry()
        self.registry.register("work", self.work)
        self.registry.register("sync_work", self.sync_work)
        self.registry.register("fail", self.fail)
        self.registry.register("flaky", self.flaky)
        self.registry.register("crash", self.crash)

    def work(self, config: Mapping[str, Any]) -> TaskCallable:
        delay = float(config.get("sleep", 0.01))

        async def run(ctx: FlowContext) -> dict[str, Any]:
            self.started.append(ctx.task.id)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await asyncio.sleep(delay)
            finally:
                self.in_flight -= 1
            self.finished.append(ctx.task.id)
            return {
                "seen": {dep: ctx.get(f"{dep}.value") for dep in ctx.task.dependencies},
                "value": config.get("value", ctx.task.id),
            }

        return run

    def sync_work(self, config: Mapping[str, Any]) -> TaskCallable:
        def run(ctx: FlowContext) -> str:
            time.sleep(float(config.get("sleep", 0.01)))
            ctx.set("thread", threading.current_thread().name)
            return "done"

        return run

    def fail(self, config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> None:
            raise TaskError(str(config.get("message", "boom")))

        return run

    def flaky(self, config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> dict[str, int]:
            n = self.calls[ctx.task.id] = self.calls.get(ctx.task.id, 0) + 1
            if n < int(config["succeed_on"]):
                raise ConnectionError(f"attempt {n} failed")
            return {"attempt": ctx.task.attempt}

        return run

    def crash(self, config: Mapping[str, Any]) -> TaskCallable:
        def run(ctx: FlowContext) -> None:
            raise ZeroDivisionError("division by zero")

        return run


def flow(*tasks: dict[str, Any], **extra: Any) -> FlowDefinition:
    return FlowDefinition.model_validate({"name": "test", "tasks": list(tasks), **extra})


async def execute(rec: Recorder, definition: FlowDefinition, concurrency: int = 8, **opts: Any):  # type: ignore[no-untyped-def]
    executor = FlowExecutor(rec.registry, concurrency)
    try:
        return await executor.execute_flow(definition, {"eventName": "e"}, ExecutionOptions(**opts))
    finally:
        executor.close()


async def test_dependencies_order_and_outputs_flow_downstream() -> None:
    rec = Recorder()
    result = await execute(
        rec,
        flow(
            {"id": "a", "type": "work", "successors": ["b", "c"]},
            {"id": "b", "type": "work", "config": {"value": "B"}},
            {"id": "c", "type": "work", "dependencies": ["a"]},
            {"id": "d", "type": "work", "dependencies": ["b", "c"]},
        ),
    )
    assert result.status is RunStatus.SUCCEEDED
    assert rec.started[0] == "a" and rec.started[-1] == "d"
    assert set(rec.started[1:3]) == {"b", "c"}
    assert result.outputs["d"]["seen"] == {"b": "B", "c": "c"}
    assert all(r.attempts == 1 and r.duration is not None for r in result.tasks.values())


async def test_concurrency_limit_is_respected() -> None:
    rec = Recorder()
    tasks = [{"id": f"t{i}", "type": "work", "config": {"sleep": 0.05}} for i in range(10)]
    result = await execute(rec, flow(*tasks), concurrency=3)
    assert result.succeeded
    assert rec.peak == 3


async def test_priority_orders_ready_tasks() -> None:
    rec = Recorder()
    result = await execute(
        rec,
        flow(
            {"id": "low", "type": "work"},
            {"id": "high", "type": "work", "priority": 10},
            {"id": "mid", "type": "work", "priority": 5},
        ),
        concurrency=1,
    )
    assert result.succeeded
    assert rec.started == ["high", "mid", "low"]


async def test_a_failure_skips_downstream_but_independent_branches_finish() -> None:
    rec = Recorder()
    result = await execute(
        rec,
        flow(
            {"id": "bad", "type": "fail", "config": {"message": "upstream API said no"}},
            {"id": "after_bad", "type": "work", "dependencies": ["bad"]},
            {"id": "after_after", "type": "work", "dependencies": ["after_bad"]},
            {"id": "other", "type": "work", "config": {"sleep": 0.05}},
        ),
    )
    assert result.status is RunStatus.FAILED
    assert result.error == "task failed: bad"
    tasks = result.tasks
    assert (tasks["bad"].status, tasks["bad"].error) == (TaskStatus.FAILED, "upstream API said no")
    assert tasks["after_bad"].status is TaskStatus.SKIPPED
    assert tasks["after_after"].status is TaskStatus.SKIPPED
    assert tasks["other"].status is TaskStatus.SUCCEEDED


async def test_fail_fast_cancels_tasks_in_flight() -> None:
    rec = Recorder()
    result = await execute(
        rec,
        flow(
            {"id": "bad", "type": "fail"},
            {"id": "slow", "type": "work", "config": {"sleep": 5}},
        ),
        fail_fast=True,
    )
    assert result.status is RunStatus.FAILED
    assert result.tasks["slow"].status is TaskStatus.CANCELLED
    assert result.duration < 4


async def test_retries_until_success_with_attempts_recorded() -> None:
    rec = Recorder()
    retry = {"attempts": 3, "backoff": "10ms"}
    result = await execute(
        rec, flow({"id": "f", "type": "flaky", "config": {"succeed_on": 3}, "retry": retry})
    )
    assert result.succeeded
    assert result.tasks["f"].attempts == 3
    assert result.outputs["f"] == {"attempt": 3}


async def test_retries_exhausted_report_the_last_error() -> None:
    rec = Recorder()
    retry = {"attempts": 2, "backoff": "10ms"}
    result = await execute(
        rec, flow({"id": "f", "type": "flaky", "config": {"succeed_on": 9}, "retry": retry})
    )
    assert result.tasks["f"].status is TaskStatus.FAILED
    assert result.tasks["f"].attempts == 2
    assert result.tasks["f"].error == "ConnectionError: attempt 2 failed"


async def test_task_timeout_fails_the_task() -> None:
    rec = Recorder()
    result = await execute(
        rec, flow({"id": "slow", "type": "work", "config": {"sleep": 5}, "timeout": "100ms"})
    )
    assert result.tasks["slow"].status is TaskStatus.FAILED
    assert result.tasks["slow"].error == "timed out after 0.1s"


async def test_flow_timeout_cancels_what_runs_and_skips_the_rest() -> None:
    rec = Recorder()
    result = await execute(
        rec,
        flow(
            {"id": "slow", "type": "work", "config": {"sleep": 5}, "successors": ["next"]},
            {"id": "next", "type": "work"},
            timeout="150ms",
        ),
    )
    assert result.status is RunStatus.FAILED
    assert result.error == "the flow timed out after 0.15s"
    assert result.tasks["slow"].status is TaskStatus.CANCELLED
    assert result.tasks["next"].status is TaskStatus.SKIPPED


async def test_a_run_can_be_cancelled() -> None:
    rec = Recorder()
    cancel = asyncio.Event()
    run = asyncio.create_task(
        execute(
            rec,
            flow(
                {"id": "slow", "type": "work", "config": {"sleep": 5}, "successors": ["next"]},
                {"id": "next", "type": "work"},
            ),
            cancel=cancel,
        )
    )
    await asyncio.sleep(0.05)
    cancel.set()
    result = await asyncio.wait_for(run, 2)
    assert result.status is RunStatus.CANCELLED
    assert result.tasks["slow"].status is TaskStatus.CANCELLED
    assert result.tasks["next"].status is TaskStatus.CANCELLED


async def test_sync_tasks_run_in_threads_and_exceptions_never_escape() -> None:
    rec = Recorder()
    result = await execute(
        rec,
        flow({"id": "s", "type": "sync_work"}, {"id": "boom", "type": "crash"}),
    )
    assert result.tasks["s"].status is TaskStatus.SUCCEEDED
    assert result.outputs["s"]["result"] == "done"
    assert result.outputs["s"]["thread"].startswith("mfo-task")
    assert result.tasks["boom"].error == "ZeroDivisionError: division by zero"


async def test_unknown_type_at_run_time_fails_the_task_naming_known_types() -> None:
    rec = Recorder()
    result = await execute(rec, flow({"id": "x", "type": "nope"}))
    assert result.tasks["x"].status is TaskStatus.FAILED
    assert result.tasks["x"].error is not None
    assert 'unknown task type "nope"; registered types: crash, fail, flaky, sync_work, work' in (
        result.tasks["x"].error
    )


async def test_restored_tasks_are_not_run_again_and_their_outputs_are_visible() -> None:
    rec = Recorder()
    result = await execute(
        rec,
        flow(
            {"id": "a", "type": "work", "successors": ["b"]},
            {"id": "b", "type": "work"},
        ),
        restored={"a": {"value": "from-before"}},
    )
    assert result.succeeded
    assert rec.started == ["b"]
    assert result.outputs["b"]["seen"] == {"a": "from-before"}


def test_run_flow_is_the_sync_entry_point() -> None:
    rec = Recorder()
    executor = FlowExecutor(rec.registry, 2)
    result = run_flow(executor, flow({"id": "a", "type": "work"}))
    executor.close()
    assert result.succeeded
    assert result.flow == "test"
    assert len(result.run_id) == 32


@pytest.mark.parametrize("concurrency", [0, -1])
def test_concurrency_must_be_positive(concurrency: int) -> None:
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        FlowExecutor(TaskRegistry(), concurrency)


async def test_a_failure_at_the_head_of_a_long_chain_skips_it_all_without_recursion() -> None:
    rec = Recorder()
    tasks = [{"id": "t0", "type": "fail"}] + [
        {"id": f"t{i}", "type": "work", "dependencies": [f"t{i - 1}"]} for i in range(1, 2000)
    ]
    result = await execute(rec, flow(*tasks))
    assert result.status is RunStatus.FAILED
    assert result.tasks["t1999"].status is TaskStatus.SKIPPED
    assert rec.started == []


async def test_when_false_skips_the_task_and_tasks_that_depend_only_on_it() -> None:
    rec = Recorder()
    result = await execute(
        rec,
        flow(
            {"id": "gate", "type": "work", "when": "eventName == 'other'", "successors": ["only"]},
            {"id": "only", "type": "work"},
            {"id": "free", "type": "work"},
            {"id": "join", "type": "work", "dependencies": ["gate", "free"]},
        ),
    )
    assert result.succeeded
    assert result.tasks["gate"].error == "skipped: when-condition is false"
    assert result.tasks["only"].status is TaskStatus.SKIPPED
    assert result.tasks["join"].status is TaskStatus.SUCCEEDED  # one predecessor ran
    assert sorted(rec.started) == ["free", "join"]


async def test_a_broken_when_fails_the_task_and_the_run() -> None:
    rec = Recorder()
    result = await execute(
        rec,
        flow(
            {"id": "gate", "type": "work", "when": "nosuch.flag", "successors": ["after"]},
            {"id": "after", "type": "work"},
        ),
    )
    assert result.status is RunStatus.FAILED
    assert result.tasks["gate"].status is TaskStatus.FAILED
    assert "nosuch" in (result.tasks["gate"].error or "")
    assert result.tasks["after"].status is TaskStatus.SKIPPED


def test_context_get_reads_nested_own_outputs_before_the_run_data() -> None:
    from mfo_client.flows import FlowContext, TaskInfo

    ctx = FlowContext({"a": {"b": 2}}, TaskInfo(id="t", name="t", type="x", attempt=1))
    ctx.set("a", {"b": 1})
    assert ctx.get("a.b") == 1
    assert ctx.get("a.c", "none") == "none"
