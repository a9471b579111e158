"""The SQLite run history: one file, WAL mode, every write committed before its call returns.

Durability. Each write is one statement in autocommit mode, so it is committed when the call
returns; the executor awaits the write of a task's final state before releasing its successors.
With the default `synchronous=NORMAL` a commit is in the OS page cache when it returns: it
survives the process being killed (kill -9, a crash, OOM), the failure a resume is for, but not
necessarily a power loss or kernel crash. `fsync=True` (`synchronous=FULL`) also syncs the WAL on
every commit and survives those too, at the price of an fsync per task state.

Threads. sqlite3 blocks, so every call runs in a worker thread (`asyncio.to_thread`) on one
shared connection, one call at a time under a lock: simple, and a history write is small next
to a task. The connection is opened on first use (creating the parent directory) and several
processes may share a file (WAL readers do not block the writer; a busy writer is waited for).

Schema, versioned with `PRAGMA user_version`: `runs` (one row per run; `trigger` and `event_id`
are for runs an event started) and `task_states` (one row per task of a run, replaced as the
task moves on). JSON columns hold the definition, the initial context and the outputs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from mfo_client.flows._history import (
    DEFAULT_HISTORY_PATH,
    RunHistoryError,
    RunRecord,
    RunState,
    TaskRecord,
    this_process,
)
from mfo_client.flows._result import RunStatus, TaskResult, TaskStatus

__all__ = ["SQLiteRunHistory"]

T = TypeVar("T")

BUSY_TIMEOUT_MS: Final = 10_000
"""How long a write waits for another process's write to the same file."""

_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE runs (
            id               TEXT PRIMARY KEY,
            flow             TEXT NOT NULL,
            flow_file        TEXT,
            status           TEXT NOT NULL
                             CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
            definition       TEXT NOT NULL,
            initial_context  TEXT NOT NULL,
            started_at       REAL NOT NULL,
            finished_at      REAL,
            error            TEXT,
            "trigger"        TEXT,
            event_id         TEXT,
            owner            TEXT,
            resumes          INTEGER NOT NULL DEFAULT 0,
            resumed_at       REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX runs_started ON runs (started_at)",
        "CREATE INDEX runs_flow ON runs (flow, started_at)",
        "CREATE INDEX runs_status ON runs (status, started_at)",
        "CREATE INDEX runs_event ON runs (event_id) WHERE event_id IS NOT NULL",
        """CREATE TABLE task_states (
            run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            task_id     TEXT NOT NULL,
            type        TEXT NOT NULL,
            status      TEXT NOT NULL,
            attempts    INTEGER NOT NULL,
            started_at  REAL,
            finished_at REAL,
            outputs     TEXT NOT NULL,
            error       TEXT,
            PRIMARY KEY (run_id, task_id)
        ) WITHOUT ROWID""",
    ),
)
_VERSION: Final = len(_MIGRATIONS)

_START: Final = """
    INSERT INTO runs (id, flow, flow_file, status, definition, initial_context, started_at,
                      "trigger", event_id, owner)
    VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET
        flow = excluded.flow,
        flow_file = excluded.flow_file,
        status = 'running',
        definition = excluded.definition,
        finished_at = NULL,
        error = NULL,
        "trigger" = coalesce(excluded."trigger", runs."trigger"),
        event_id = coalesce(excluded.event_id, runs.event_id),
        owner = excluded.owner,
        resumes = runs.resumes + 1,
        resumed_at = excluded.started_at,
        cancel_requested = 0
"""
_RECORD_TASK: Final = """
    INSERT OR REPLACE INTO task_states
        (run_id, task_id, type, status, attempts, started_at, finished_at, outputs, error)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_GET_RUN: Final = """
    SELECT id, flow, flow_file, status, definition, initial_context, started_at, finished_at,
           error, "trigger", event_id, owner, resumes, resumed_at, cancel_requested
    FROM runs WHERE id = ?
"""
_GET_TASKS: Final = """
    SELECT run_id, task_id, type, status, attempts, started_at, finished_at, outputs, error
    FROM task_states WHERE run_id = ?
    ORDER BY started_at IS NULL, started_at, task_id
"""
_LIST_RUNS: Final = """
    SELECT id, flow, flow_file, status, definition, initial_context, started_at, finished_at,
           error, "trigger", event_id, owner, resumes, resumed_at, cancel_requested
    FROM runs
    WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR flow = ?2)
    ORDER BY started_at DESC, id LIMIT ?3
"""
_LIST_TASKS: Final = """
    SELECT run_id, task_id, type, status, attempts, started_at, finished_at, outputs, error
    FROM task_states
    WHERE run_id IN (
        SELECT id FROM runs
        WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR flow = ?2)
        ORDER BY started_at DESC, id LIMIT ?3
    )
    ORDER BY run_id, started_at IS NULL, started_at, task_id
"""


class SQLiteRunHistory:
    """A `RunHistory` in the SQLite file at `path` (default `.mfo/runs.db`).

    Use it as an async context manager, or `await close()` when done.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_HISTORY_PATH, *, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def __aenter__(self) -> SQLiteRunHistory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- writes ---------------------------------------------------------------------------

    async def start_run(
        self,
        run_id: str,
        flow_name: str,
        flow_file: str | None,
        definition_json: Mapping[str, Any],
        initial_context: Mapping[str, Any],
        started_at: float,
        trigger: str | None = None,
        event_id: str | None = None,
    ) -> None:
        row = (
            run_id,
            flow_name,
            flow_file,
            _dumps(definition_json),
            _dumps(initial_context),
            started_at,
            trigger,
            event_id,
            this_process(),
        )
        await self._call(lambda conn: conn.execute(_START, row))

    async def record_task(self, run_id: str, result: TaskResult) -> None:
        row = (
            run_id,
            result.id,
            result.type,
            result.status.value,
            result.attempts,
            result.started_at,
            result.finished_at,
            _dumps(result.outputs),
            result.error,
        )
        await self._call(lambda conn: conn.execute(_RECORD_TASK, row))

    async def finish_run(
        self, run_id: str, status: RunStatus, error: str | None, finished_at: float
    ) -> None:
        state = RunState(status.value)
        await self._call(
            lambda conn: conn.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                (state.value, error, finished_at, run_id),
            )
        )

    async def request_cancel(self, run_id: str) -> bool:
        def request(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE runs SET cancel_requested = 1 WHERE id = ? AND status = 'running'",
                (run_id,),
            )
            return cursor.rowcount > 0

        return await self._call(request)

    # --- reads ----------------------------------------------------------------------------

    async def cancel_requested(self, run_id: str) -> bool:
        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            return bool(row and row[0])

        return await self._call(read)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def read(conn: sqlite3.Connection) -> RunRecord | None:
            conn.execute("BEGIN")  # one snapshot for the run and its tasks
            try:
                row = conn.execute(_GET_RUN, (run_id,)).fetchone()
                tasks = conn.execute(_GET_TASKS, (run_id,)).fetchall()
            finally:
                conn.execute("COMMIT")
            return None if row is None else _run(row, _tasks(tasks).get(run_id, ()))

        return await self._call(read)

    async def list_runs(
        self, limit: int = 20, status: RunState | str | None = None, flow: str | None = None
    ) -> list[RunRecord]:
        args = (None if status is None else RunState(status).value, flow, max(0, limit))

        def read(conn: sqlite3.Connection) -> list[RunRecord]:
            # One snapshot, so the tasks read are those of the runs read.
            conn.execute("BEGIN")
            try:
                rows = conn.execute(_LIST_RUNS, args).fetchall()
                tasks = conn.execute(_LIST_TASKS, args).fetchall()
            finally:
                conn.execute("COMMIT")
            by_run = _tasks(tasks)
            return [_run(row, by_run.get(row[0], ())) for row in rows]

        return await self._call(read)

    # --- the connection -------------------------------------------------------------------

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._locked, fn)

    def _locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._closed:
                raise RunHistoryError(f"the run history {self.path} is closed")
            if self._conn is None:
                self._conn = self._connect()
            return fn(self._conn)

    def _connect(self) -> sqlite3.Connection:
        # Runs hold event data and task outputs: readable by this user only.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.touch(mode=0o600, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.fsync else 'NORMAL'}")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > _VERSION:
            raise RunHistoryError(
                f"the run history {path} has schema version {version}, newer than this "
                f"mfo-client understands ({_VERSION}); upgrade mfo-client or use another file"
            )
        for statements in _MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def _tasks(rows: list[Any]) -> dict[str, tuple[TaskRecord, ...]]:
    found: dict[str, list[TaskRecord]] = {}
    for run_id, task_id, type_, status, attempts, started, finished, outputs, error in rows:
        found.setdefault(run_id, []).append(
            TaskRecord(
                task_id=task_id,
                type=type_,
                status=TaskStatus(status),
                attempts=attempts,
                started_at=started,
                finished_at=finished,
                outputs=json.loads(outputs),
                error=error,
            )
        )
    return {run_id: tuple(records) for run_id, records in found.items()}


def _run(row: tuple[Any, ...], tasks: tuple[TaskRecord, ...]) -> RunRecord:
    (
        run_id,
        flow,
        flow_file,
        status,
        definition,
        initial,
        started_at,
        finished_at,
        error,
        trigger,
        event_id,
        owner,
        resumes,
        resumed_at,
        cancel,
    ) = row
    return RunRecord(
        run_id=run_id,
        flow=flow,
        status=RunState(status),
        started_at=started_at,
        definition=json.loads(definition),
        initial_context=json.loads(initial),
        flow_file=flow_file,
        finished_at=finished_at,
        error=error,
        trigger=trigger,
        event_id=event_id,
        owner=owner,
        resumes=resumes,
        resumed_at=resumed_at,
        cancel_requested=bool(cancel),
        tasks=tasks,
    )
