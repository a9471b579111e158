"""The SQLite run history on a real file: round trips, filters, resume upserts, cancel flags."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mfo_client.flows import (
    DEFAULT_HISTORY_PATH,
    RunHistory,
    RunHistoryError,
    RunState,
    RunStatus,
    SQLiteRunHistory,
    TaskResult,
    TaskStatus,
)
from mfo_client.flows._history import owner_alive, this_process

DEFINITION = {"name": "demo", "tasks": [{"id": "a", "type": "t"}, {"id": "b", "type": "t"}]}


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[SQLiteRunHistory]:
    async with SQLiteRunHistory(tmp_path / "sub" / "runs.db") as store:
        yield store


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


def test_default_path_and_protocol() -> None:
    store: RunHistory = SQLiteRunHistory()
    assert str(store.path) == DEFAULT_HISTORY_PATH == ".mfo/runs.db"  # type: ignore[attr-defined]


async def test_run_and_tasks_round_trip(history: SQLiteRunHistory) -> None:
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


async def test_unserialisable_outputs_are_kept_as_text(history: SQLiteRunHistory) -> None:
    await start(history, "r1")
    result = TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED, outputs={"p": Path("/x")})
    await history.record_task("r1", result)
    record = await history.get_run("r1")
    assert record is not None and record.tasks[0].outputs == {"p": "/x"}


async def test_a_task_of_an_unknown_run_is_refused(history: SQLiteRunHistory) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await history.record_task("nope", TaskResult(id="a", type="t"))


async def test_list_latest_first_with_filters(history: SQLiteRunHistory) -> None:
    await start(history, "old", 1.0)
    await start(history, "mid", 2.0, flow="other")
    await start(history, "new", 3.0)
    await history.record_task("new", TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED))
    await history.finish_run("old", RunStatus.SUCCEEDED, None, 1.5)

    assert [r.run_id for r in await history.list_runs()] == ["new", "mid", "old"]
    assert [r.run_id for r in await history.list_runs(limit=2)] == ["new", "mid"]
    assert [r.run_id for r in await history.list_runs(status="running")] == ["new", "mid"]
    assert [r.run_id for r in await history.list_runs(status=RunState.SUCCEEDED)] == ["old"]
    assert [r.run_id for r in await history.list_runs(flow="other")] == ["mid"]
    assert await history.list_runs(status="failed", flow="demo") == []
    new = (await history.list_runs(limit=1))[0]
    assert [t.task_id for t in new.tasks] == ["a"]
    with pytest.raises(ValueError, match="nonsense"):
        await history.list_runs(status="nonsense")


async def test_starting_a_known_run_again_is_a_resume(history: SQLiteRunHistory) -> None:
    await start(history, "r1", 100.0, trigger="hook", event_id="e1")
    done = TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED, outputs={"v": 1})
    await history.record_task("r1", done)
    await history.request_cancel("r1")
    await history.finish_run("r1", RunStatus.CANCELLED, "the run was cancelled", 101.0)

    new_definition = {**DEFINITION, "description": "fixed"}
    await history.start_run("r1", "demo", None, new_definition, {"ignored": True}, 200.0)
    record = await history.get_run("r1")
    assert record is not None
    assert record.status is RunState.RUNNING
    assert (record.finished_at, record.error, record.cancel_requested) == (None, None, False)
    assert (record.started_at, record.resumed_at, record.resumes) == (100.0, 200.0, 1)
    assert record.definition == new_definition
    assert record.initial_context == {"input": {"n": 1}}  # what the run started with
    assert (record.trigger, record.event_id) == ("hook", "e1")
    assert [t.outputs for t in record.tasks] == [{"v": 1}]


async def test_cancel_flag(history: SQLiteRunHistory) -> None:
    assert await history.request_cancel("missing") is False
    await start(history, "r1")
    assert await history.cancel_requested("r1") is False
    assert await history.request_cancel("r1") is True
    assert await history.cancel_requested("r1") is True
    await history.finish_run("r1", RunStatus.CANCELLED, "the run was cancelled", 101.0)
    assert await history.request_cancel("r1") is False  # only a running run
    assert await history.cancel_requested("missing") is False


async def test_writes_are_committed_when_the_call_returns(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SQLiteRunHistory(path, fsync=True) as store:
        await start(store, "r1")
        await store.record_task("r1", TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED))
        # Another connection (another process, after a crash) sees it before any close.
        with sqlite3.connect(path) as other:
            rows = other.execute("SELECT task_id, status FROM task_states").fetchall()
            mode = other.execute("PRAGMA journal_mode").fetchone()[0]
        other.close()
        assert rows == [("a", "succeeded")]
        assert mode == "wal"


async def test_closed_history_refuses_calls(tmp_path: Path) -> None:
    store = SQLiteRunHistory(tmp_path / "runs.db")
    await store.close()
    with pytest.raises(RunHistoryError, match="closed"):
        await store.get_run("r1")


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    async with SQLiteRunHistory(path) as store:
        with pytest.raises(RunHistoryError, match="schema version 99"):
            await store.list_runs()


def test_owner_alive() -> None:
    assert owner_alive(this_process()) is True
    assert owner_alive(None) is None
    assert owner_alive("some-other-host.invalid:1") is None
    host = this_process().rpartition(":")[0]
    assert owner_alive(f"{host}:999999999") is False


async def test_the_history_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private" / "runs.db"
    store = SQLiteRunHistory(path)
    try:
        await store.start_run("r", "f", None, {"name": "f", "tasks": []}, {"token": "t"}, 1.0)
    finally:
        await store.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
