"""The executor writing a run history, resuming from it, and cancelling through it: on each
backend (a SQLite file, a Redis; see conftest.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from mfo_client.flows import (
    ExecutionOptions,
    FlowContext,
    FlowDefinition,
    FlowExecutor,
    RunHistory,
    RunHistoryError,
    RunState,
    RunStatus,
    TaskCallable,
    TaskError,
    TaskRegistry,
    TaskResult,
    TaskStatus,
    parse_flow,
    resume_run,
    retry_run,
)
from mfo_client.flows import _executor as executor_module


class Tasks:
    """Test task types: `work` counts its calls; `gate` fails until its flag file exists;
    `check` reads the history from inside a task; `block` waits until cancelled."""

    def __init__(self, history: RunHistory, flag: Path) -> None:
        self.history = history
        self.flag = flag
        self.calls: dict[str, int] = {}
        self.seen_in_history: dict[str, str | None] = {}
        self.blocking = asyncio.Event()
        self.registry = TaskRegistry()
        for name in ("work", "gate", "check", "block"):
            self.registry.register(name, getattr(self, name))

    def count(self, ctx: FlowContext) -> int:
        n = self.calls[ctx.task.id] = self.calls.get(ctx.task.id, 0) + 1
        return n

    def work(self, config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> dict[str, Any]:
            n = self.count(ctx)
            upstream = {dep: ctx.get(f"{dep}.value") for dep in ctx.task.dependencies}
            return {"value": f"{ctx.task.id}#{n}", "upstream": upstream}

        return run

    def gate(self, config: Mapping[str, Any]) -> TaskCallable:
        def run(ctx: FlowContext) -> dict[str, Any]:  # a sync task, in the thread pool
            self.count(ctx)
            if not self.flag.exists():
                raise TaskError(f"not ready: {self.flag.name} is missing")
            return {"value": "open"}

        return run

    def check(self, config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> None:
            record = await self.history.get_run(ctx.task.run_id)
            assert record is not None
            for dep in ctx.task.dependencies:
                task = record.task(dep)
                self.seen_in_history[dep] = None if task is None else task.status.value

        return run

    def block(self, config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> None:
            self.count(ctx)
            self.blocking.set()
            await asyncio.sleep(60)

        return run


def flow(*tasks: dict[str, Any]) -> FlowDefinition:
    return FlowDefinition.model_validate({"name": "hist", "tasks": list(tasks)})


PIPELINE = flow(
    {"id": "a", "type": "work", "successors": ["b", "side"]},
    {"id": "side", "type": "work"},
    {"id": "b", "type": "gate", "successors": ["c"]},
    {"id": "c", "type": "work", "dependencies": ["a"]},
)


@pytest.fixture
def tasks(history: RunHistory, tmp_path: Path) -> Tasks:
    return Tasks(history, tmp_path / "ready.flag")


@pytest.fixture
def executor(tasks: Tasks) -> Iterator[FlowExecutor]:
    executor = FlowExecutor(tasks.registry, concurrency=4)
    yield executor
    executor.close()


async def test_a_run_is_recorded_from_start_to_end(
    executor: FlowExecutor, history: RunHistory, tasks: Tasks
) -> None:
    tasks.flag.touch()
    options = ExecutionOptions(run_id="r1", history=history)
    result = await executor.execute_flow(PIPELINE, {"input": {"n": 1}}, options)
    assert result.succeeded and result.run_id == "r1"
    record = await history.get_run("r1")
    assert record is not None
    assert record.status is RunState.SUCCEEDED and record.error is None
    assert record.finished_at == result.finished_at and record.started_at == result.started_at
    assert record.flow == "hist" and record.flow_file is None
    assert record.initial_context == {"input": {"n": 1}}
    assert record.definition == PIPELINE.model_dump(mode="json")
    assert {t.task_id: t.status for t in record.tasks} == dict.fromkeys(
        ["a", "side", "b", "c"], TaskStatus.SUCCEEDED
    )
    c = record.task("c")
    assert c is not None and c.outputs == {"value": "c#1", "upstream": {"a": "a#1", "b": "open"}}
    assert c.attempts == 1 and c.started_at is not None and c.finished_at is not None


async def test_a_task_is_on_record_before_its_successors_start(
    executor: FlowExecutor, history: RunHistory, tasks: Tasks
) -> None:
    definition = flow(
        {"id": "a", "type": "work", "successors": ["probe"]},
        {"id": "b", "type": "work", "successors": ["probe"]},
        {"id": "probe", "type": "check"},
    )
    result = await executor.execute_flow(definition, {}, ExecutionOptions(history=history))
    assert result.succeeded
    assert tasks.seen_in_history == {"a": "succeeded", "b": "succeeded"}


async def test_a_failed_run_resumes_without_rerunning_what_succeeded(
    executor: FlowExecutor, history: RunHistory, tasks: Tasks
) -> None:
    first = await executor.execute_flow(
        PIPELINE, {"k": "v"}, ExecutionOptions(run_id="r1", history=history)
    )
    assert first.status is RunStatus.FAILED
    record = await history.get_run("r1")
    assert record is not None and record.status is RunState.FAILED
    assert record.error == "task failed: b"
    statuses = {t.task_id: t.status for t in record.tasks}
    assert statuses == {
        "a": TaskStatus.SUCCEEDED,
        "side": TaskStatus.SUCCEEDED,
        "b": TaskStatus.FAILED,
        "c": TaskStatus.SKIPPED,
    }
    a_before = record.task("a")

    tasks.flag.touch()  # the cause is fixed
    seen: list[tuple[str, TaskStatus]] = []
    options = ExecutionOptions(observer=lambda r: seen.append((r.id, r.status)))
    resumed = await resume_run(executor, history, "r1", options=options)

    assert resumed.succeeded and resumed.run_id == "r1"
    assert tasks.calls == {"a": 1, "side": 1, "b": 2, "c": 1}  # a and side not run again
    assert {tid for tid, _ in seen} == {"b", "c"}
    assert resumed.tasks["c"].outputs == {"value": "c#1", "upstream": {"a": "a#1", "b": "open"}}
    assert resumed.outputs["a"] == {"value": "a#1", "upstream": {}}

    record = await history.get_run("r1")
    assert record is not None
    assert record.status is RunState.SUCCEEDED and record.error is None
    assert record.resumes == 1 and record.resumed_at is not None
    assert record.initial_context == {"k": "v"}
    assert record.task("a") == a_before  # its record is untouched: attempts, times, outputs
    assert all(t.status is TaskStatus.SUCCEEDED for t in record.tasks)
    b = record.task("b")
    assert b is not None and b.error is None and b.attempts == 1

    with pytest.raises(RunHistoryError, match="already succeeded; nothing to resume"):
        await resume_run(executor, history, "r1")


async def test_resume_can_run_a_fixed_definition(
    executor: FlowExecutor, history: RunHistory, tasks: Tasks
) -> None:
    await executor.execute_flow(PIPELINE, {}, ExecutionOptions(run_id="r1", history=history))
    fixed = flow(
        {"id": "a", "type": "work", "successors": ["b"]},
        {"id": "b", "type": "work", "successors": ["c"]},  # no gate any more
        {"id": "c", "type": "work", "dependencies": ["a"]},
    )
    resumed = await resume_run(executor, history, "r1", definition=fixed)
    assert resumed.succeeded
    assert tasks.calls == {"a": 1, "side": 1, "b": 2, "c": 1}
    record = await history.get_run("r1")
    assert record is not None and record.definition == fixed.model_dump(mode="json")


async def test_resume_refuses_unknown_and_live_runs(
    executor: FlowExecutor, history: RunHistory, tasks: Tasks
) -> None:
    with pytest.raises(RunHistoryError, match='no run "nope"'):
        await resume_run(executor, history, "nope")
    # Recorded as running by this (live) process: another resume would run its tasks twice.
    definition = PIPELINE.model_dump(mode="json")
    await history.start_run("live", "hist", None, definition, {}, 1.0)
    with pytest.raises(RunHistoryError, match="may still be running in process"):
        await resume_run(executor, history, "live")
    tasks.flag.touch()
    forced = await resume_run(executor, history, "live", force=True)
    assert forced.succeeded


async def test_a_cancel_request_cancels_the_run(
    executor: FlowExecutor,
    history: RunHistory,
    tasks: Tasks,
    new_history: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(executor_module, "CANCEL_POLL_INTERVAL", 0.02)
    definition = flow(
        {"id": "a", "type": "work", "successors": ["wait"]},
        {"id": "wait", "type": "block", "successors": ["after"]},
        {"id": "after", "type": "work"},
    )
    run = asyncio.create_task(
        executor.execute_flow(definition, {}, ExecutionOptions(run_id="r1", history=history))
    )
    await asyncio.wait_for(tasks.blocking.wait(), 5)
    async with new_history() as other:  # as `mfo runs cancel` does
        assert await other.request_cancel("r1")
    result = await asyncio.wait_for(run, 5)

    assert result.status is RunStatus.CANCELLED
    record = await history.get_run("r1")
    assert record is not None
    assert record.status is RunState.CANCELLED and record.error == "the run was cancelled"
    states = {t.task_id: (t.status, t.error) for t in record.tasks}
    assert states["a"] == (TaskStatus.SUCCEEDED, None)
    assert states["wait"] == (TaskStatus.CANCELLED, "cancelled")
    assert states["after"][0] is TaskStatus.CANCELLED

    tasks.blocking.clear()
    resumed = asyncio.create_task(resume_run(executor, history, "r1"))
    await asyncio.wait_for(tasks.blocking.wait(), 5)  # the cancel request was cleared
    assert tasks.calls == {"a": 1, "wait": 2}
    resumed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await resumed
    record = await history.get_run("r1")
    assert record is not None and record.status is RunState.RUNNING  # as after a crash


async def test_a_failing_history_write_is_logged_and_the_run_goes_on(
    executor: FlowExecutor,
    history: RunHistory,
    tasks: Tasks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        """The test's history, but recording a task fails (a full disk, a lost connection)."""

        async def record_task(self, run_id: str, result: TaskResult) -> None:
            raise OSError("disk full")

        def __getattr__(self, name: str) -> Any:
            return getattr(history, name)

    with caplog.at_level(logging.ERROR, logger="mfo_client.flows"):
        result = await executor.execute_flow(
            flow({"id": "a", "type": "work"}),
            {},
            ExecutionOptions(history=Broken()),  # type: ignore[arg-type]
        )
    assert result.succeeded
    assert "cannot record task a in the history" in caplog.text
    record = await history.get_run(result.run_id)
    assert record is not None and record.status is RunState.SUCCEEDED and record.tasks == ()


async def test_a_cancelled_task_is_never_left_recorded_as_running(
    history: RunHistory,
) -> None:
    """Cancel runs while most of their tasks' `running` states are still being written: the
    final states written after must stay final. The task launched first (highest priority)
    is written last at the end, right behind its own `running` write."""
    cancel = asyncio.Event()

    def stopper(config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> None:
            cancel.set()
            await asyncio.sleep(60)

        return run

    registry = TaskRegistry()
    registry.register("stopper", stopper)
    definition = flow(*({"id": f"t{i:02}", "type": "stopper", "priority": i} for i in range(40)))
    executor = FlowExecutor(registry, concurrency=40)
    try:
        for n in range(30):
            cancel.clear()
            options = ExecutionOptions(run_id=f"r{n}", history=history, cancel=cancel)
            result = await executor.execute_flow(definition, {}, options)
            assert result.status is RunStatus.CANCELLED
            record = await history.get_run(f"r{n}")
            assert record is not None and record.status is RunState.CANCELLED
            assert {t.task_id: t.status for t in record.tasks} == dict.fromkeys(
                (f"t{i:02}" for i in range(40)), TaskStatus.CANCELLED
            )
    finally:
        executor.close()


async def test_outputs_json_cannot_key_are_recorded_and_restored_with_text_keys(
    history: RunHistory, tasks: Tasks
) -> None:
    def pairs(config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> dict[str, Any]:
            return {"by_pair": {(1, 2): "a"}, "by_number": {1: "b"}}

        return run

    tasks.registry.register("pairs", pairs)
    executor = FlowExecutor(tasks.registry)
    try:
        definition = flow(
            {"id": "p", "type": "pairs", "successors": ["b"]}, {"id": "b", "type": "gate"}
        )
        first = await executor.execute_flow(definition, {}, ExecutionOptions(history=history))
        assert first.status is RunStatus.FAILED and first.tasks["p"].status is TaskStatus.SUCCEEDED
        record = await history.get_run(first.run_id)
        assert record is not None
        p = record.task("p")
        assert p is not None and p.outputs == {"by_pair": {"(1, 2)": "a"}, "by_number": {"1": "b"}}
        tasks.flag.touch()
        resumed = await resume_run(executor, history, first.run_id)
        assert resumed.succeeded
        assert resumed.outputs["p"] == {"by_pair": {"(1, 2)": "a"}, "by_number": {"1": "b"}}
    finally:
        executor.close()


def parent_flow(child: dict[str, Any]) -> FlowDefinition:
    text = yaml.safe_dump(
        {
            "name": "parent",
            "tasks": [
                {"id": "a", "type": "work", "successors": ["sub"]},
                {"id": "sub", "type": "subflow", **child, "successors": ["after"]},
                {"id": "after", "type": "work"},
            ],
        }
    )
    return parse_flow(text, "parent.yaml")


CHILD = {
    "config": {
        "input": {"from": "{{ a.value }}"},
        "tasks": [
            {"id": "c1", "type": "work", "successors": ["c2"]},
            {"id": "c2", "type": "gate"},
        ],
    }
}


async def test_a_subflow_child_is_a_run_of_its_own_linked_to_its_parent(
    executor: FlowExecutor, history: RunHistory, tasks: Tasks
) -> None:
    definition = parent_flow(CHILD)
    options = ExecutionOptions(run_id="p", history=history, config_path="/etc/mfo.yaml")
    first = await executor.execute_flow(definition, {}, options)
    assert first.status is RunStatus.FAILED
    assert first.tasks["sub"].error == "subflow failed: c2: not ready: ready.flag is missing"

    child = await history.get_run("p/sub")
    assert child is not None
    assert (child.parent_run_id, child.parent_task_id) == ("p", "sub")
    assert child.flow == "parent.sub" and child.status is RunState.FAILED
    assert child.initial_context == {"from": "a#1"} and child.config_path == "/etc/mfo.yaml"
    assert {t.task_id: t.status for t in child.tasks} == {
        "c1": TaskStatus.SUCCEEDED,
        "c2": TaskStatus.FAILED,
    }
    listed = {r.run_id: r.parent_run_id for r in await history.list_runs()}
    assert listed == {"p": None, "p/sub": "p"}
    with pytest.raises(RunHistoryError, match='child run of task "sub" of run "p"; resume that'):
        await resume_run(executor, history, "p/sub")

    # Resuming the parent runs its subflow task again: the whole child, under the same id.
    tasks.flag.touch()
    resumed = await resume_run(executor, history, "p")
    assert resumed.succeeded
    assert tasks.calls == {"a": 1, "c1": 2, "c2": 2, "after": 1}
    child = await history.get_run("p/sub")
    assert child is not None and child.status is RunState.SUCCEEDED and child.resumes == 1
    assert all(t.status is TaskStatus.SUCCEEDED for t in child.tasks)


async def test_each_item_of_a_for_each_subflow_is_a_child_run(
    executor: FlowExecutor, history: RunHistory, tasks: Tasks
) -> None:
    tasks.flag.touch()
    child = {**CHILD, "for_each": "[1, 2, 3]", "max_parallel": 3}
    result = await executor.execute_flow(
        parent_flow(child), {}, ExecutionOptions(run_id="p", history=history)
    )
    assert result.succeeded
    children = [r for r in await history.list_runs() if r.parent_run_id == "p"]
    assert sorted(r.run_id for r in children) == ["p/sub[0]", "p/sub[1]", "p/sub[2]"]
    assert all(r.status is RunState.SUCCEEDED and len(r.tasks) == 2 for r in children)


async def test_a_cancelled_subflow_task_records_its_child_cancelled(
    executor: FlowExecutor,
    history: RunHistory,
    tasks: Tasks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(executor_module, "CANCEL_POLL_INTERVAL", 0.02)
    blocking = {
        "config": {
            "tasks": [
                {"id": "c1", "type": "work", "successors": ["wait"]},
                {"id": "wait", "type": "block"},
            ]
        }
    }
    run = asyncio.create_task(
        executor.execute_flow(
            parent_flow(blocking), {}, ExecutionOptions(run_id="p", history=history)
        )
    )
    await asyncio.wait_for(tasks.blocking.wait(), 5)
    assert await history.request_cancel("p")
    result = await asyncio.wait_for(run, 5)
    assert result.status is RunStatus.CANCELLED

    child = await history.get_run("p/sub")
    assert child is not None and child.status is RunState.CANCELLED
    assert child.error == "cancelled: its subflow task was cancelled"
    assert {t.task_id: t.status for t in child.tasks} == {
        "c1": TaskStatus.SUCCEEDED,
        "wait": TaskStatus.CANCELLED,
    }


async def test_retry_is_a_new_run_with_the_same_context_trigger_and_event(
    executor: FlowExecutor, history: RunHistory, tasks: Tasks
) -> None:
    options = ExecutionOptions(run_id="r1", history=history, trigger="push", event_id="e1")
    first = await executor.execute_flow(PIPELINE, {"input": {"n": 1}}, options)
    assert first.status is RunStatus.FAILED

    tasks.flag.touch()
    retried = await retry_run(executor, history, "r1")
    assert retried.succeeded and retried.run_id != "r1"
    assert tasks.calls == {"a": 2, "side": 2, "b": 2, "c": 1}  # everything ran again
    new = await history.get_run(retried.run_id)
    assert new is not None and new.status is RunState.SUCCEEDED and new.resumes == 0
    assert new.initial_context == {"input": {"n": 1}}
    assert (new.trigger, new.event_id) == ("push", "e1")
    old = await history.get_run("r1")
    assert old is not None and old.status is RunState.FAILED  # left as it was

    runs = [r.run_id for r in await history.list_runs(event_id="e1")]
    assert runs == [retried.run_id, "r1"]
    chosen = await retry_run(executor, history, "r1", options=ExecutionOptions(run_id="mine"))
    assert chosen.run_id == "mine" and chosen.succeeded

    with pytest.raises(RunHistoryError, match="succeeded; retry only a failed or cancelled run"):
        await retry_run(executor, history, retried.run_id)
    await history.start_run("live", "hist", None, PIPELINE.model_dump(mode="json"), {}, 1.0)
    with pytest.raises(RunHistoryError, match="is recorded as running"):
        await retry_run(executor, history, "live")
    with pytest.raises(RunHistoryError, match='no run "nope"'):
        await retry_run(executor, history, "nope")


async def test_a_run_taken_over_by_another_process_keeps_that_ones_record(
    history: RunHistory,
    new_history: Callable[[], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two workers on one run: A stalls past its lease, B takes the job over and resumes the
    run; A notices only then, cancels, and records its end while B still runs. B's record
    stands: t1 succeeded with its outputs (for `respond: outputs`, and for a later resume)."""
    a_stalls, b_at_t2, b_may_end = asyncio.Event(), asyncio.Event(), asyncio.Event()
    calls = 0

    def first(config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            if calls == 1:  # A's attempt
                a_stalls.set()
                await asyncio.sleep(60)
            return {"by": f"attempt {calls}"}

        return run

    def second(config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> None:
            b_at_t2.set()
            await b_may_end.wait()

        return run

    registry = TaskRegistry()
    registry.register("first", first)
    registry.register("second", second)
    definition = flow(
        {"id": "t1", "type": "first", "successors": ["t2"]}, {"id": "t2", "type": "second"}
    )
    a_executor, b_executor = FlowExecutor(registry), FlowExecutor(registry)
    lost = asyncio.Event()
    a_options = ExecutionOptions(run_id="r1", history=history, cancel=lost, trigger="hook")
    with caplog.at_level(logging.WARNING, logger="mfo_client.flows"):
        a_run = asyncio.create_task(a_executor.execute_flow(definition, {}, a_options))
        await a_stalls.wait()
        async with new_history() as b_history:
            b_run = asyncio.create_task(
                resume_run(b_executor, b_history, "r1", options=ExecutionOptions(), force=True)
            )
            await b_at_t2.wait()
            lost.set()  # A's next renew fails: it stops the run here
            a_result = await a_run
            assert a_result.status is RunStatus.CANCELLED
            record = await b_history.get_run("r1")
            assert record is not None and record.status is RunState.RUNNING
            t1 = record.task("t1")
            assert t1 is not None and t1.status is TaskStatus.SUCCEEDED
            b_may_end.set()
            b_result = await b_run
    assert b_result.succeeded
    record = await history.get_run("r1")
    assert record is not None and record.status is RunState.SUCCEEDED and record.resumes == 1
    t1 = record.task("t1")
    assert t1 is not None and t1.status is TaskStatus.SUCCEEDED
    assert t1.outputs == {"by": "attempt 2"}
    ignored = [r for r in caplog.records if "another process started this run" in r.message]
    assert [r.levelno for r in ignored] == [logging.WARNING]  # once, for all of A's writes
    a_executor.close()
    b_executor.close()
