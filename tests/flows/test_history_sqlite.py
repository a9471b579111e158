"""What only the SQLite run history does: its file (mode, WAL, schema versions), group commits.

What both backends do is in test_history_backends.py."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from mfo_client.flows import (
    DEFAULT_HISTORY_PATH,
    RunHistory,
    RunHistoryError,
    RunState,
    SQLiteRunHistory,
    TaskResult,
    TaskStatus,
)
from mfo_client.flows._history import owner_alive, this_process
from mfo_client.flows._history_sqlite import _PRUNABLE, _TREE

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


def test_default_path_and_protocol() -> None:
    store: RunHistory = SQLiteRunHistory()
    assert str(store.path) == DEFAULT_HISTORY_PATH == ".mfo/runs.db"  # type: ignore[attr-defined]


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
        assert check.execute("PRAGMA user_version").fetchone()[0] == 3
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


V2_STEP = (
    "ALTER TABLE runs ADD COLUMN config_path TEXT",
    "ALTER TABLE runs ADD COLUMN parent_run_id TEXT",
    "ALTER TABLE runs ADD COLUMN parent_task_id TEXT",
    'CREATE INDEX runs_trigger ON runs ("trigger", started_at) WHERE "trigger" IS NOT NULL',
    "DROP INDEX runs_event",
    "CREATE INDEX runs_event ON runs (event_id, started_at) WHERE event_id IS NOT NULL",
)


async def test_a_version_2_history_is_brought_up_to_date(tmp_path: Path) -> None:
    """A runs.db written before fencing tokens: its runs read, resume, fence and prune."""
    path = tmp_path / "runs.db"
    conn = sqlite3.connect(path)
    for statement in (*V1_SCHEMA, *V2_STEP):
        conn.execute(statement)
    for run_id, status, finished, parent in (
        ("done", "succeeded", 2.0, None),
        ("done/sub", "succeeded", 1.5, "done"),
        ("open", "running", None, None),
    ):
        conn.execute(
            "INSERT INTO runs (id, flow, status, definition, initial_context, started_at, "
            "finished_at, parent_run_id) VALUES (?, 'demo', ?, ?, '{}', 1.0, ?, ?)",
            (run_id, status, json.dumps(DEFINITION), finished, parent),
        )
    conn.execute(
        "INSERT INTO task_states VALUES ('open', 'a', 't', 'running', 1, 1.0, NULL, '{}', NULL)"
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()

    async with SQLiteRunHistory(path) as worker, SQLiteRunHistory(path) as stale:
        # A run recorded before the upgrade takes tokens from its next start on.
        await stale.start_run("open", "demo", None, DEFINITION, {}, 5.0)
        await worker.start_run("open", "demo", None, DEFINITION, {}, 6.0)
        cancelled = TaskResult(id="a", type="t", status=TaskStatus.CANCELLED, attempts=1)
        assert await stale.record_task("open", cancelled) is False
        done = TaskResult(id="a", type="t", status=TaskStatus.SUCCEEDED, attempts=1)
        assert await worker.record_task("open", done) is True
        record = await worker.get_run("open")
        assert record is not None and record.resumes == 2
        assert [t.status for t in record.tasks] == [TaskStatus.SUCCEEDED]

        assert await worker.prune(10.0, 10) == 2  # "done" with its child
        assert [r.run_id for r in await worker.list_runs()] == ["open"]

    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 3
        # What prune asks: by the end time, and the children of each run, through indexes.
        plans = [
            " ".join(str(row[-1]) for row in check.execute(f"EXPLAIN QUERY PLAN {query}", args))
            for query, args in ((_PRUNABLE, (1.0, 5)), (_TREE, ("done", 5)))
        ]
    check.close()
    assert "USING INDEX runs_finished" in plans[0] and "B-TREE" not in plans[0]
    assert "USING INDEX runs_parent" in plans[1]
