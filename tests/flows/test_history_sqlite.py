"""The SQLite run history on a real file: round trips, filters, resume upserts, cancel flags."""

from __future__ import annotations

import asyncio
import json
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


async def test_outputs_with_keys_json_refuses_are_kept_with_text_keys(
    history: SQLiteRunHistory,
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


async def test_a_cancelled_callers_write_lands_in_call_order(history: SQLiteRunHistory) -> None:
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


async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    async with SQLiteRunHistory(path) as store:
        await start(store, "r1")
        before = store.commits
        # Another process holds the write lock, so the writes queue up behind the first one.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        results = [
            TaskResult(id=f"t{i}", type="t", status=TaskStatus.SUCCEEDED) for i in range(100)
        ]
        writes = asyncio.gather(*(store.record_task("r1", r) for r in results))
        bad = asyncio.ensure_future(store.record_task("no-such-run", results[0]))
        for _ in range(3):
            await asyncio.sleep(0)
        other.execute("COMMIT")
        other.close()
        await writes
        with pytest.raises(sqlite3.IntegrityError):  # its error is its own; the others commit
            await bad
        record = await store.get_run("r1")
        assert record is not None and len(record.tasks) == 100
        # The first write's transaction, then one for all that queued behind it.
        assert 1 <= store.commits - before <= 2


async def test_list_filters_by_trigger_and_event(history: SQLiteRunHistory) -> None:
    await start(history, "hand", 1.0)
    await start(history, "push-1", 2.0, trigger="push", event_id="e1")
    await start(history, "push-2", 3.0, trigger="push", event_id="e2")
    await start(history, "tag-1", 4.0, trigger="tag", event_id="e1")
    await history.finish_run("push-2", RunStatus.FAILED, "task failed: a", 5.0)

    async def ids(**filters: str) -> list[str]:
        return [r.run_id for r in await history.list_runs(**filters)]  # type: ignore[arg-type]

    assert await ids(trigger="push") == ["push-2", "push-1"]
    assert await ids(event_id="e1") == ["tag-1", "push-1"]
    assert await ids(trigger="push", event_id="e1") == ["push-1"]
    assert await ids(trigger="push", status="failed") == ["push-2"]
    assert await ids(trigger="push", flow="other") == []
    assert await ids(event_id="nope") == []
    assert await ids() == ["tag-1", "push-2", "push-1", "hand"]


async def test_config_path_and_parent_round_trip(history: SQLiteRunHistory) -> None:
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


V1_SCHEMA = (
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY, flow TEXT NOT NULL, flow_file TEXT,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
        definition TEXT NOT NULL, initial_context TEXT NOT NULL, started_at REAL NOT NULL,
        finished_at REAL, error TEXT, "trigger" TEXT, event_id TEXT, owner TEXT,
        resumes INTEGER NOT NULL DEFAULT 0, resumed_at REAL,
        cancel_requested INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX runs_started ON runs (started_at)",
    "CREATE INDEX runs_flow ON runs (flow, started_at)",
    "CREATE INDEX runs_status ON runs (status, started_at)",
    "CREATE INDEX runs_event ON runs (event_id) WHERE event_id IS NOT NULL",
    """CREATE TABLE task_states (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, task_id TEXT NOT NULL,
        type TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, started_at REAL,
        finished_at REAL, outputs TEXT NOT NULL, error TEXT,
        PRIMARY KEY (run_id, task_id)) WITHOUT ROWID""",
)


async def test_a_version_1_history_is_brought_up_to_date(tmp_path: Path) -> None:
    """A runs.db written before config paths and child runs were recorded opens as it was."""
    path = tmp_path / "runs.db"
    conn = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO runs (id, flow, status, definition, initial_context, started_at, "
        '"trigger", event_id) '
        "VALUES ('old', 'demo', 'failed', ?, '{\"n\": 1}', 1.0, 'push', 'e1')",
        (json.dumps(DEFINITION),),
    )
    conn.execute(
        "INSERT INTO task_states VALUES ('old', 'a', 't', 'succeeded', 1, 1.0, 2.0, '{\"v\": 1}', "
        "NULL)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    async with SQLiteRunHistory(path) as store:
        old = await store.get_run("old")
        assert old is not None and old.status is RunState.FAILED
        assert (old.config_path, old.parent_run_id, old.parent_task_id) == (None, None, None)
        assert old.initial_context == {"n": 1} and old.tasks[0].outputs == {"v": 1}
        assert [r.run_id for r in await store.list_runs(event_id="e1", trigger="push")] == ["old"]
        await store.start_run("new", "demo", None, DEFINITION, {}, 2.0, config_path="/c.yaml")
        new = await store.get_run("new")
        assert new is not None and new.config_path == "/c.yaml"

    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 2
        plans = {
            column: " ".join(
                str(row[-1])
                for row in check.execute(
                    f"EXPLAIN QUERY PLAN SELECT id FROM runs WHERE {column} = 'x' "
                    "ORDER BY started_at DESC LIMIT 5"
                )
            )
            for column in ('"trigger"', "event_id")
        }
    check.close()
    assert "runs_trigger" in plans['"trigger"'] and "runs_event" in plans["event_id"]
