"""The run history on each backend (a SQLite file, a Redis): round trips, filters, resume
upserts, cancel flags, write order, fencing, pruning. Every test runs against both and expects
the same."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mfo_client.flows import (
    RedisRunHistory,
    RunHistory,
    RunHistoryError,
    RunState,
    RunStatus,
    SQLiteRunHistory,
    TaskResult,
    TaskStatus,
)
from mfo_client.flows._history import mark_cancelled, this_process
from tests._servers import free_port
from tests._stores import REDIS_URL, redis_keys

AnyHistory = SQLiteRunHistory | RedisRunHistory
DEFINITION = {"name": "demo", "tasks": [{"id": "a", "type": "t"}, {"id": "b", "type": "t"}]}


async def start(history: RunHistory, run_id: str, started_at: float = 100.0, **kw: str) -> None:
    await history.start_run(
        run_id,
        kw.pop("flow", "demo"),
        "flows/demo.yaml",
        DEFINITION,
        {"input": {"n": 1}},
        started_at,
        **kw,
    )


async def ids(history: RunHistory, limit: int = 20, **filters: str) -> list[str]:
    return [r.run_id for r in await history.list_runs(limit, **filters)]  # type: ignore[arg-type]


async def test_run_and_tasks_round_trip(history: AnyHistory) -> None:
    await start(history, "r1", trigger="github-push", event_id="evt-1")
    record = await history.get_run("r1")
    assert record is not None
    assert record.status is RunState.RUNNING
    assert (record.flow, record.flow_file, record.started_at) == ("demo", "flows/demo.yaml", 100.0)
    assert record.definition == DEFINITION
    assert record.initial_context == {"input": {"n": 1}}
    assert (record.trigger, record.event_id) == ("github-push", "evt-1")
    assert record.owner == this_process()
    assert record.tasks == () and record.finished_at is None and record.duration is None
    assert (record.resumes, record.resumed_at, record.cancel_requested) == (0, None, False)
    assert (record.config_path, record.parent_run_id, record.parent_task_id) == (None, None, None)

    a = TaskResult(id="a", type="t", status=TaskStatus.RUNNING, attempts=1, started_at=101.0)
    await history.record_task("r1", a)
    a.status, a.finished_at, a.outputs = TaskStatus.SUCCEEDED, 103.5, {"x": [1, "two"], "y": None}
    await history.record_task("r1", a)
    b = TaskResult(id="b", type="t", status=TaskStatus.FAILED, attempts=3, error="boom")
    b.started_at, b.finished_at = 102.0, 104.0
    await history.record_task("r1", b)
    await history.finish_run("r1", RunStatus.FAILED, "task failed: b", 105.0)

    record = await history.get_run("r1")
    assert record is not None
    assert record.status is RunState.FAILED and record.error == "task failed: b"
    assert record.duration == 5.0
    assert [t.task_id for t in record.tasks] == ["a", "b"]  # in start order
    ta = record.task("a")
    assert ta is not None and ta.status is TaskStatus.SUCCEEDED and ta.attempts == 1
    assert ta.outputs == {"x": [1, "two"], "y": None} and ta.duration == 2.5
    tb = record.task("b")
    assert tb is not None and (tb.status, tb.attempts, tb.error) == (TaskStatus.FAILED, 3, "boom")
    assert record.task("nope") is None
    assert await history.get_run("missing") is None


async def test_tasks_are_in_start_order_those_not_started_last(history: AnyHistory) -> None:
    await start(history, "r1")
    for task_id, started in (("z", 3.0), ("y", None), ("m", 1.0), ("b", None), ("c", 3.0)):
        await history.record_task("r1", TaskResult(id=task_id, type="t", started_at=started))
    record = await history.get_run("r1")
    assert record is not None
    assert [t.task_id for t in record.tasks] == ["m", "c", "z", "b", "y"]


async def test_times_keep_every_digit(history: AnyHistory) -> None:
    started = 1_700_000_000.123456789
    await start(history, "r1", started)
    finished = TaskResult(id="a", type="t", started_at=started + 1e-6, finished_at=started + 0.1)
    await history.record_task("r1", finished)
    await history.finish_run("r1", RunStatus.SUCCEEDED, None, started + 0.2)
    record = (await history.list_runs())[0]
    assert record.started_at == started and record.finished_at == started + 0.2
    assert record.tasks[0].started_at == started + 1e-6


async def test_unserialisable_outputs_are_kept_as_text(history: AnyHistory) -> None:
    await start(history, "r1")
    result = TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED, outputs={"p": Path("/x")})
    await history.record_task("r1", result)
    record = await history.get_run("r1")
    assert record is not None and record.tasks[0].outputs == {"p": "/x"}


async def test_a_task_of_an_unknown_run_is_refused(history: AnyHistory) -> None:
    refused = sqlite3.IntegrityError if isinstance(history, SQLiteRunHistory) else RunHistoryError
    with pytest.raises(refused):
        await history.record_task("nope", TaskResult(id="a", type="t"))
    assert await history.get_run("nope") is None
    await history.finish_run("nope", RunStatus.FAILED, None, 1.0)  # nothing to finish
    assert await history.list_runs() == []


async def test_list_latest_first_with_filters(history: AnyHistory) -> None:
    await start(history, "old", 1.0)
    await start(history, "mid", 2.0, flow="other")
    await start(history, "new", 3.0)
    await history.record_task("new", TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED))
    await history.finish_run("old", RunStatus.SUCCEEDED, None, 1.5)

    assert await ids(history) == ["new", "mid", "old"]
    assert await ids(history, limit=2) == ["new", "mid"]
    assert await ids(history, limit=0) == []
    assert await ids(history, status="running") == ["new", "mid"]
    assert [r.run_id for r in await history.list_runs(status=RunState.SUCCEEDED)] == ["old"]
    assert await ids(history, flow="other") == ["mid"]
    assert await history.list_runs(status="failed", flow="demo") == []
    new = (await history.list_runs(limit=1))[0]
    assert [t.task_id for t in new.tasks] == ["a"]
    with pytest.raises(ValueError, match="nonsense"):
        await history.list_runs(status="nonsense")


async def test_runs_started_at_once_are_listed_by_id(history: AnyHistory) -> None:
    for run_id in ("c", "a", "d", "b"):
        await start(history, run_id, 5.0)
    await start(history, "later", 6.0)
    await start(history, "earlier", 4.0)
    assert await ids(history) == ["later", "a", "b", "c", "d", "earlier"]
    assert await ids(history, limit=3) == ["later", "a", "b"]  # the limit cuts through a tie
    assert await ids(history, limit=2, flow="demo") == ["later", "a"]


async def test_filters_find_runs_far_down_the_list(history: AnyHistory) -> None:
    """Runs matching all filters among many matching only some: every match, newest first."""
    for n in range(300):
        await start(history, f"r{n:03}", float(n), flow="rare" if n % 50 == 7 else "common")
        if n % 2:
            await history.finish_run(f"r{n:03}", RunStatus.FAILED, "task failed: a", n + 0.5)
    assert await ids(history, flow="rare") == ["r257", "r207", "r157", "r107", "r057", "r007"]
    assert await ids(history, flow="rare", status="failed", limit=2) == ["r257", "r207"]
    assert await ids(history, flow="common", status="running", limit=3) == ["r298", "r296", "r294"]
    failed_common = await ids(history, limit=200, status="failed", flow="common")
    assert failed_common == [f"r{n:03}" for n in range(299, 0, -2) if n % 50 != 7]


async def test_starting_a_known_run_again_is_a_resume(history: AnyHistory) -> None:
    await start(history, "r1", 100.0, trigger="hook", event_id="e1")
    done = TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED, outputs={"v": 1})
    await history.record_task("r1", done)
    await history.request_cancel("r1")
    await history.finish_run("r1", RunStatus.CANCELLED, "the run was cancelled", 101.0)

    new_definition = {**DEFINITION, "description": "fixed"}
    await history.start_run("r1", "demo", None, new_definition, {"input": {"n": 2}}, 200.0)
    record = await history.get_run("r1")
    assert record is not None
    assert record.status is RunState.RUNNING and record.flow_file is None
    assert (record.finished_at, record.error, record.cancel_requested) == (None, None, False)
    assert (record.started_at, record.resumed_at, record.resumes) == (100.0, 200.0, 1)
    assert record.definition == new_definition
    assert record.initial_context == {"input": {"n": 2}}  # what this attempt runs with
    assert (record.trigger, record.event_id) == ("hook", "e1")
    assert [t.outputs for t in record.tasks] == [{"v": 1}]
    # Listed by its first start, under its new status only.
    assert await ids(history, status="running", trigger="hook", event_id="e1") == ["r1"]
    assert await ids(history, status="cancelled") == []

    await history.start_run("r1", "renamed", None, DEFINITION, {}, 300.0, trigger="other")
    record = await history.get_run("r1")
    assert record is not None and record.resumes == 2 and record.trigger == "other"
    assert await ids(history, flow="demo") == [] and await ids(history, trigger="hook") == []
    assert await ids(history, flow="renamed", trigger="other", event_id="e1") == ["r1"]


async def test_cancel_flag(history: AnyHistory) -> None:
    assert await history.request_cancel("missing") is False
    await start(history, "r1")
    assert await history.cancel_requested("r1") is False
    assert await history.request_cancel("r1") is True
    assert await history.cancel_requested("r1") is True
    await history.finish_run("r1", RunStatus.CANCELLED, "the run was cancelled", 101.0)
    assert await history.request_cancel("r1") is False  # only a running run
    assert await history.cancel_requested("missing") is False


async def test_a_paused_triggered_run_can_be_kept_from_resuming(history: AnyHistory) -> None:
    # A worker stopping mid-run records it cancelled without a request: paused, to resume.
    await start(history, "paused", trigger="hook")
    await history.finish_run("paused", RunStatus.CANCELLED, "the run was cancelled", 101.0)
    record = await history.get_run("paused")
    assert record is not None and record.paused
    assert await history.request_cancel("paused") is True  # the operator: do not resume it
    record = await history.get_run("paused")
    assert record is not None and not record.paused and record.cancel_requested
    # A run started by hand and cancelled (Ctrl-C) is not paused: nothing would resume it.
    await start(history, "by-hand")
    await history.finish_run("by-hand", RunStatus.CANCELLED, "the run was cancelled", 101.0)
    by_hand = await history.get_run("by-hand")
    assert by_hand is not None and not by_hand.paused
    assert await history.request_cancel("by-hand") is False


async def test_another_handle_sees_a_write_once_the_call_returns(
    history: AnyHistory, new_history: Callable[[], AnyHistory]
) -> None:
    await start(history, "r1")
    await history.record_task("r1", TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED))
    async with new_history() as other:  # another process, e.g. after this one crashed
        record = await other.get_run("r1")
        assert record is not None and [t.status for t in record.tasks] == [TaskStatus.SUCCEEDED]
        assert await other.request_cancel("r1")
    assert await history.cancel_requested("r1")


async def test_a_reader_that_stops_waiting_is_cancelled(history: AnyHistory) -> None:
    """A cancel landing at any point of a read reaches its caller (the executor's cancel poll
    must stop when the run ends), never swallowed by the client library."""
    await start(history, "r1")

    async def poll() -> None:
        for _ in range(30):
            await history.cancel_requested("r1")
            await history.get_run("r1")

    for i in range(150):
        task = asyncio.create_task(poll())
        for _ in range(i % 17):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_closed_history_refuses_calls(new_history: Callable[[], AnyHistory]) -> None:
    store = new_history()
    await start(store, "r1")
    await store.close()
    for call in (
        store.get_run("r1"),
        store.list_runs(),
        store.record_task("r1", TaskResult(id="a", type="t")),
    ):
        with pytest.raises(RunHistoryError, match="closed"):
            await call


async def test_outputs_with_keys_json_refuses_are_kept_with_text_keys(
    history: AnyHistory,
) -> None:
    await history.start_run("r1", "demo", None, DEFINITION, {"by_pair": {(1, 2): "x"}}, 1.0)
    cycle: list[object] = [1]
    cycle.append(cycle)
    outputs = {
        "counts": {1: "a", (1, 2): "b", None: "c", False: "d"},
        "raw": {b"k": Path("/x"), frozenset(): {1.5: [(3, 4)]}},
        "cycle": cycle,
    }
    a = TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED, outputs=outputs)  # type: ignore[arg-type]
    await history.record_task("r1", a)
    record = await history.get_run("r1")
    assert record is not None
    assert record.initial_context == {"by_pair": {"(1, 2)": "x"}}
    assert record.tasks[0].outputs == {
        "counts": {"1": "a", "(1, 2)": "b", "null": "c", "false": "d"},
        "raw": {"b'k'": "/x", "frozenset()": {"1.5": [[3, 4]]}},
        "cycle": [1, "[1, [...]]"],
    }


async def test_a_cancelled_callers_write_lands_in_call_order(history: AnyHistory) -> None:
    """A task cancelled while its `running` state is being written: that write must not land
    after the final state written next (one FIFO writer), and is not lost either."""
    await start(history, "r1")

    async def task(i: int) -> None:
        running = TaskResult(id=f"t{i:03}", type="t", status=TaskStatus.RUNNING)
        write = asyncio.create_task(history.record_task("r1", running))
        await asyncio.sleep(0)  # the write is on its way
        write.cancel()
        if i % 2 == 0:  # the even ones are settled; the odd ones stay as they were written
            final = TaskResult(id=f"t{i:03}", type="t", status=TaskStatus.CANCELLED)
            await history.record_task("r1", final)

    await asyncio.gather(*(task(i) for i in range(400)))
    record = await history.get_run("r1")
    assert record is not None
    statuses = {t.task_id: t.status for t in record.tasks}
    assert statuses == {
        f"t{i:03}": TaskStatus.CANCELLED if i % 2 == 0 else TaskStatus.RUNNING for i in range(400)
    }


async def test_list_filters_by_trigger_and_event(history: AnyHistory) -> None:
    await start(history, "hand", 1.0)
    await start(history, "push-1", 2.0, trigger="push", event_id="e1")
    await start(history, "push-2", 3.0, trigger="push", event_id="e2")
    await start(history, "tag-1", 4.0, trigger="tag", event_id="e1")
    await history.finish_run("push-2", RunStatus.FAILED, "task failed: a", 5.0)

    assert await ids(history, trigger="push") == ["push-2", "push-1"]
    assert await ids(history, event_id="e1") == ["tag-1", "push-1"]
    assert await ids(history, trigger="push", event_id="e1") == ["push-1"]
    assert await ids(history, trigger="push", status="failed") == ["push-2"]
    assert await ids(history, trigger="push", flow="other") == []
    assert await ids(history, event_id="nope") == []
    assert await ids(history) == ["tag-1", "push-2", "push-1", "hand"]


async def test_config_path_and_parent_round_trip(history: AnyHistory) -> None:
    await start(history, "p")
    await history.start_run(
        "p/sub",
        "demo.sub",
        None,
        DEFINITION,
        {},
        2.0,
        config_path="/etc/mfo/config.yaml",
        parent_run_id="p",
        parent_task_id="sub",
    )
    child = await history.get_run("p/sub")
    assert child is not None
    assert (child.config_path, child.parent_run_id, child.parent_task_id) == (
        "/etc/mfo/config.yaml",
        "p",
        "sub",
    )
    # Run again (the parent resumed): the config is what this attempt used, the parent stays.
    await history.start_run("p/sub", "demo.sub", None, DEFINITION, {}, 3.0)
    child = await history.get_run("p/sub")
    assert child is not None and child.resumes == 1
    assert (child.config_path, child.parent_run_id, child.parent_task_id) == (None, "p", "sub")
    parent = await history.get_run("p")
    assert parent is not None and parent.parent_run_id is None and parent.config_path is None


async def test_ids_and_names_with_separators_stay_apart(history: AnyHistory) -> None:
    """Ids and names are free text: one holding ":" or "/" is never taken for another."""
    await start(history, "a", 1.0, flow="x:y")
    await start(history, "a:tasks", 2.0, flow="x")
    await start(history, "a:run:b", 3.0, trigger="t:all")
    await history.record_task("a", TaskResult(id="only-a", type="t"))
    await history.record_task("a:tasks", TaskResult(id="only-a:tasks", type="t"))
    by_id = {r.run_id: [t.task_id for t in r.tasks] for r in await history.list_runs()}
    assert by_id == {"a:run:b": [], "a:tasks": ["only-a:tasks"], "a": ["only-a"]}
    assert await ids(history, flow="x") == ["a:tasks"]
    assert await ids(history, flow="x:y") == ["a"]
    assert await ids(history, trigger="t") == []


# --- Fencing: the handle that started a run last owns its record ---------------------------


def t1(status: TaskStatus, at: float, **kw: Any) -> TaskResult:
    return TaskResult(id="t1", type="t", status=status, attempts=1, started_at=at, **kw)


async def test_a_stale_worker_cannot_overwrite_the_run_another_one_resumed(
    history: AnyHistory, new_history: Callable[[], AnyHistory]
) -> None:
    """Worker A stalls past its lease, B takes the job over and resumes the run; A then notices,
    cancels and records its end. B's record must stay as B wrote it."""
    a = history
    await start(a, "run", 1.0, trigger="hook")
    assert await a.record_task("run", t1(TaskStatus.RUNNING, 1.0)) is True
    async with new_history() as b:
        await b.start_run("run", "demo", None, DEFINITION, {}, 100.0)
        done = t1(TaskStatus.SUCCEEDED, 100.0, finished_at=101.0, outputs={"v": 1})
        assert await b.record_task("run", done) is True

        cancelled = t1(TaskStatus.CANCELLED, 1.0, finished_at=102.0, error="cancelled")
        assert await a.record_task("run", cancelled) is False
        other = TaskResult(id="t2", type="t", status=TaskStatus.CANCELLED, error="cancelled")
        assert await a.record_task("run", other) is False
        assert await a.finish_run("run", RunStatus.CANCELLED, "lost its lease", 102.0) is False
        assert await a.request_cancel("run") is False
        record = await b.get_run("run")
        assert record is not None and record.status is RunState.RUNNING
        assert not record.cancel_requested and [t.task_id for t in record.tasks] == ["t1"]

        assert await b.finish_run("run", RunStatus.SUCCEEDED, None, 103.0) is True
        assert await a.finish_run("run", RunStatus.FAILED, "late", 104.0) is False
    record = await a.get_run("run")
    assert record is not None
    assert (record.status, record.error, record.finished_at) == (RunState.SUCCEEDED, None, 103.0)
    task = record.task("t1")
    assert task is not None and task.status is TaskStatus.SUCCEEDED and task.outputs == {"v": 1}


async def test_a_stale_parent_cannot_cancel_a_child_another_worker_runs(
    history: AnyHistory, new_history: Callable[[], AnyHistory]
) -> None:
    """The cancelled subflow task of a stale worker marks its child cancelled (`mark_cancelled`
    through the same handle): not the child the new owner runs now."""
    await history.start_run("p/sub", "demo.sub", None, DEFINITION, {}, 1.0, parent_run_id="p")
    await history.record_task("p/sub", t1(TaskStatus.RUNNING, 1.0))
    async with new_history() as owner:
        await owner.start_run("p/sub", "demo.sub", None, DEFINITION, {}, 50.0)
        await mark_cancelled(history, "p/sub", "cancelled: its subflow task was cancelled")
        record = await owner.get_run("p/sub")
        assert record is not None
        assert record.status is RunState.RUNNING and not record.cancel_requested
        assert [t.status for t in record.tasks] == [TaskStatus.RUNNING]


async def test_operators_and_the_current_owner_still_write(
    history: AnyHistory, new_history: Callable[[], AnyHistory]
) -> None:
    """Fencing stops only a stale owner: the handle that started the run last, and handles
    that never started it (`mfo runs cancel` from another process), write as before."""
    await start(history, "r1", 1.0)
    await history.record_task("r1", t1(TaskStatus.RUNNING, 1.0))
    async with new_history() as operator:
        await mark_cancelled(operator, "r1", "cancelled: its process is gone")
    record = await history.get_run("r1")
    assert record is not None and record.status is RunState.CANCELLED and record.cancel_requested
    assert [t.status for t in record.tasks] == [TaskStatus.CANCELLED]

    await start(history, "r1", 2.0)  # resumed by the same handle: its token again
    assert await history.record_task("r1", t1(TaskStatus.SUCCEEDED, 2.0)) is True
    assert await history.finish_run("r1", RunStatus.SUCCEEDED, None, 3.0) is True
    assert await history.finish_run("missing", RunStatus.FAILED, None, 3.0) is False
    record = await history.get_run("r1")
    assert record is not None and record.status is RunState.SUCCEEDED


# --- Pruning ---------------------------------------------------------------------------------

CUTOFF = 1_000.0


async def ended(
    history: RunHistory,
    run_id: str,
    status: RunStatus,
    started_at: float,
    finished_at: float,
    **kw: str,
) -> None:
    await start(history, run_id, started_at, **kw)
    await history.record_task(run_id, t1(TaskStatus.SUCCEEDED, started_at))
    await history.finish_run(run_id, status, None, finished_at)


async def test_prune_deletes_runs_that_ended_before_the_cutoff(history: AnyHistory) -> None:
    await ended(history, "old-ok", RunStatus.SUCCEEDED, 10.0, 11.0, trigger="hook", event_id="e1")
    await ended(history, "old-failed", RunStatus.FAILED, 20.0, 21.0, flow="other")
    await ended(history, "old-by-hand", RunStatus.CANCELLED, 30.0, 31.0)  # Ctrl-C
    await ended(history, "old-on-request", RunStatus.CANCELLED, 40.0, 41.0, trigger="hook")
    await history.request_cancel("old-on-request")  # mfo runs cancel of a paused run
    await ended(history, "paused", RunStatus.CANCELLED, 50.0, 51.0, trigger="hook")
    await start(history, "old-running", 60.0)  # its process may be gone: an operator decides
    await ended(history, "resumed", RunStatus.FAILED, 70.0, 71.0)
    await start(history, "resumed", 2_000.0)  # running again
    await ended(history, "long", RunStatus.SUCCEEDED, 80.0, 1_500.0)  # ended after the cutoff
    await ended(history, "new", RunStatus.SUCCEEDED, 1_600.0, 1_700.0, trigger="hook")
    # Child runs go with their parent, whatever their own state; a parent's stay with it.
    await ended(history, "old-ok/sub", RunStatus.SUCCEEDED, 12.0, 13.0, parent_run_id="old-ok")
    await start(history, "old-ok/sub/deeper", 12.5, parent_run_id="old-ok/sub")
    await ended(history, "long/sub", RunStatus.SUCCEEDED, 90.0, 91.0, parent_run_id="long")

    assert await history.prune(CUTOFF, 0) == 0
    assert await history.prune(CUTOFF, 100) == 6
    assert await history.prune(CUTOFF, 100) == 0
    kept = ["new", "resumed", "long", "old-running", "paused", "long/sub"]
    assert sorted(await ids(history)) == sorted(kept)
    for gone in ("old-ok", "old-ok/sub", "old-ok/sub/deeper", "old-failed", "old-by-hand"):
        assert await history.get_run(gone) is None
    # Gone from every listing too.
    assert await ids(history, trigger="hook") == ["new", "paused"]
    assert await ids(history, event_id="e1") == []
    assert await ids(history, flow="other") == []
    assert await ids(history, status="cancelled") == ["paused"]
    record = await history.get_run("long")
    assert record is not None and [t.task_id for t in record.tasks] == ["t1"]


async def test_prune_goes_in_steps_and_never_leaves_a_child_without_its_parent(
    history: AnyHistory,
) -> None:
    for n in range(12):
        run_id = f"r{n:02}"
        await ended(history, run_id, RunStatus.SUCCEEDED, float(n), n + 0.5)
        for item in range(n % 4):  # up to 3 children each, one of them with a child of its own
            child = f"{run_id}/each[{item}]"
            await ended(history, child, RunStatus.SUCCEEDED, n + 0.1, n + 0.2, parent_run_id=run_id)
            if item == 1:
                await start(history, f"{child}/sub", n + 0.15, parent_run_id=child)
    total = 12 + sum(n % 4 for n in range(12)) + sum(1 for n in range(12) if n % 4 >= 2)
    steps = []
    while (pruned := await history.prune(CUTOFF, 5)) == 5:
        steps.append(pruned)
        left = {r.run_id: r for r in await history.list_runs(limit=1000)}
        orphans = [r for r in left.values() if r.parent_run_id and r.parent_run_id not in left]
        assert orphans == []
    assert sum(steps) + pruned == total and pruned < 5
    assert await history.list_runs() == []


async def test_prune_of_many_runs_most_of_them_kept(history: AnyHistory) -> None:
    """Runs kept (ended after the cutoff, paused, children) among the ones due: each pass
    deletes every run due, however many are kept around them."""
    due = []
    for n in range(150):
        run_id = f"r{n:03}"
        if n % 3 == 0:
            await ended(history, run_id, RunStatus.FAILED, float(n), n + 0.5)
            due.append(run_id)
        elif n % 3 == 1:
            await ended(history, run_id, RunStatus.SUCCEEDED, float(n), CUTOFF + n)
        else:
            await ended(history, run_id, RunStatus.CANCELLED, float(n), n + 0.5, trigger="hook")
    assert await history.prune(CUTOFF, 20) == 20
    assert await history.prune(CUTOFF, 1000) == len(due) - 20
    left = await ids(history, limit=1000)
    assert len(left) == 100 and not set(due) & set(left)


# --- Redis only ---------------------------------------------------------------------------


@pytest.mark.parametrize("history_backend", ["redis"])
async def test_redis_writes_are_batched_and_each_error_is_its_callers(
    history: AnyHistory,
) -> None:
    assert isinstance(history, RedisRunHistory)
    await start(history, "r1")
    before = history.batches
    results = [TaskResult(id=f"t{i}", type="t", status=TaskStatus.SUCCEEDED) for i in range(100)]
    writes = asyncio.gather(*(history.record_task("r1", r) for r in results))
    bad = asyncio.ensure_future(history.record_task("no-such-run", results[0]))
    await writes
    with pytest.raises(RunHistoryError, match="no such run in the run history redis://"):
        await bad
    record = await history.get_run("r1")
    assert record is not None and len(record.tasks) == 100
    assert 1 <= history.batches - before <= 2  # not one round trip per write


@pytest.mark.parametrize("history_backend", ["redis"])
async def test_redis_scripts_missing_on_the_server_are_loaded_again(history: AnyHistory) -> None:
    """As after a restart of Redis, which forgets the scripts loaded: nothing is lost."""
    assert isinstance(history, RedisRunHistory)
    await start(history, "r1")
    await history.list_runs()
    unknown = "0" * 40  # the sha of a script the server does not have
    history._write_script.sha = history._list_script.sha = unknown
    results = [TaskResult(id=f"t{i}", type="t", status=TaskStatus.SUCCEEDED) for i in range(5)]
    await asyncio.gather(*(history.record_task("r1", r) for r in results))
    assert [len(r.tasks) for r in await history.list_runs()] == [5]
    assert history._write_script.sha != unknown and history._list_script.sha != unknown


@pytest.mark.parametrize("max_scan", [1, 3, 64])
async def test_redis_lists_and_prunes_a_few_entries_per_script_call(
    redis_prefix: str, max_scan: int
) -> None:
    """Each script call looks at `max_scan` index entries at most and the next goes on where
    it stopped: the same answers as in one go, runs started at once included."""
    async with RedisRunHistory(REDIS_URL, redis_prefix, max_scan=max_scan) as history:
        for n in range(120):
            flow = "rare" if n % 40 == 7 else "common"
            await start(history, f"r{n:03}", float(n // 3), flow=flow)  # three runs per start
            if n % 2:
                await history.finish_run(f"r{n:03}", RunStatus.FAILED, "task failed", n + 0.5)
        assert await ids(history, flow="rare") == ["r087", "r047", "r007"]
        assert await ids(history, flow="rare", status="failed", limit=2) == ["r087", "r047"]
        assert await ids(history, limit=4) == ["r117", "r118", "r119", "r114"]
        assert await ids(history, flow="common", status="running", limit=2) == ["r118", "r114"]
        failed = await ids(history, limit=100, status="failed", flow="common")
        odd = sorted((n for n in range(1, 120, 2) if n % 40 != 7), key=lambda n: (-(n // 3), n))
        assert failed == [f"r{n:03}" for n in odd]
        assert len(await ids(history, limit=1000)) == 120

        # Due: the failed ones that ended before 30.0 (odd n < 30); kept: every other one.
        assert await history.prune(30.0, 4) == 4
        assert await history.prune(30.0, 100) == 11
        left = await ids(history, limit=1000)
        assert len(left) == 105 and "r001" not in left and "r029" not in left
        assert "r031" in left and "r000" in left


async def test_redis_prune_leaves_no_key_of_a_run_behind(redis_prefix: str) -> None:
    async with RedisRunHistory(REDIS_URL, redis_prefix) as history:
        await ended(history, "kept", RunStatus.SUCCEEDED, 1.0, CUTOFF + 1, trigger="push")
        await ended(history, "p", RunStatus.FAILED, 2.0, 3.0, trigger="push", event_id="e1")
        await ended(history, "p/sub", RunStatus.FAILED, 2.1, 2.9, parent_run_id="p")
        await start(history, "p/sub/deeper", 2.2, parent_run_id="p/sub", flow="deep")
        assert await history.prune(CUTOFF, 10) == 3
    keys = sorted(key.decode() for key in await redis_keys(redis_prefix))
    assert keys == [
        f"{redis_prefix}:runs:{key}"
        for key in (
            "all",
            "flow:demo",
            "run:kept",
            "status:succeeded",
            "tasks:kept",
            "trigger:push",
        )
    ]


async def test_redis_keys_stay_under_the_prefix(redis_prefix: str) -> None:
    async with RedisRunHistory(REDIS_URL, redis_prefix) as history:
        await start(history, "r1", trigger="push", event_id="e1", parent_run_id="p")
        await history.record_task("r1", TaskResult(id="a", type="t"))
        await history.finish_run("r1", RunStatus.FAILED, "task failed: a", 2.0)
    keys = sorted(key.decode() for key in await redis_keys(redis_prefix))
    assert keys == [
        f"{redis_prefix}:runs:{key}"
        for key in (
            "all",
            "children:p",
            "event:e1",
            "flow:demo",
            "run:r1",
            "status:failed",
            "tasks:r1",
            "trigger:push",
        )
    ]


async def test_an_unreachable_redis_is_named_without_its_password() -> None:
    port = free_port()
    url = f"redis://user:s3cret-pw@127.0.0.1:{port}/2"
    async with RedisRunHistory(url, "mfo") as history:
        for call in (history.get_run("r1"), history.list_runs(), start(history, "r1")):
            with pytest.raises(RunHistoryError) as caught:
                await call
            message = str(caught.value)
            assert f"the run history redis://127.0.0.1:{port}/2 (prefix mfo) failed" in message
            assert "s3cret-pw" not in message
