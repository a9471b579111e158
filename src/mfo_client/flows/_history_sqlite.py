"""The SQLite run history: one file, WAL mode, every write committed before its call returns.

Durability. A call returns once the transaction holding its write has committed; the executor
awaits the write of a task's final state before releasing its successors. With the default
`synchronous=NORMAL` a commit is in the OS page cache when it returns: it survives the process
being killed (kill -9, a crash, OOM), the failure a resume is for, but not necessarily a power
loss or kernel crash. `fsync=True` (`synchronous=FULL`) also syncs the WAL on every commit and
survives those too, at the price of an fsync per commit.

Threads (`_history_writer`). sqlite3 blocks, so one thread per history owns the connection and
runs every call, reads and writes, in the order they were made; the writes queued while a commit
is written share the next transaction (group commit: `commits` counts them), so concurrent tasks
share the cost of a commit and a task's `running` state never lands after its final one. The
connection is opened on the first call (creating the parent directory) and several processes may
share a file (WAL readers do not block the writer; a busy writer is waited for).

Schema, versioned with `PRAGMA user_version`, one step per version (a file of an older version is
brought up to date when opened): `runs` (one row per run; `trigger` and `event_id` are for runs
an event started, `config_path` the config a run used, `parent_run_id` and `parent_task_id` link
a subflow's child run to its parent, `token` is the fence of the last `start_run`) and
`task_states` (one row per task of a run, replaced as the task moves on). JSON columns hold the
definition, the initial context and the outputs.

Fencing and pruning (see `_history`). A write carrying a token checks it against the run's row
in the same transaction (the write lock is held from its start, so no other process's
`start_run` can land between the check and the write). `prune` deletes the runs one transaction
at a time, `limit` runs at most, a run's descendants first (found through `parent_run_id`), and
its task states with it (`ON DELETE CASCADE`).
"""

from __future__ import annotations

import json
import os
import sqlite3
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
    json_text,
    this_process,
)
from mfo_client.flows._history_tokens import RunTokens
from mfo_client.flows._history_writer import Writer
from mfo_client.flows._result import RunStatus, TaskResult, TaskStatus

__all__ = ["SQLiteRunHistory"]

T = TypeVar("T")

BUSY_TIMEOUT_MS: Final = 10_000
"""How long a write waits for another process's write to the same file."""
MAX_DEPTH: Final = 100
"""Deepest child run `prune` looks for: subflows nest far less (it only stops a loop of
`parent_run_id`s, which no run history of mfo-client writes)."""

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
    (
        "ALTER TABLE runs ADD COLUMN config_path TEXT",
        "ALTER TABLE runs ADD COLUMN parent_run_id TEXT",
        "ALTER TABLE runs ADD COLUMN parent_task_id TEXT",
        'CREATE INDEX runs_trigger ON runs ("trigger", started_at) WHERE "trigger" IS NOT NULL',
        "DROP INDEX runs_event",
        "CREATE INDEX runs_event ON runs (event_id, started_at) WHERE event_id IS NOT NULL",
    ),
    (
        "ALTER TABLE runs ADD COLUMN token TEXT",
        "CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL",
        "CREATE INDEX runs_finished ON runs (finished_at) WHERE parent_run_id IS NULL",
    ),
)
_VERSION: Final = len(_MIGRATIONS)

_START: Final = """
    INSERT INTO runs (id, flow, flow_file, status, definition, initial_context, started_at,
                      "trigger", event_id, owner, config_path, parent_run_id, parent_task_id,
                      token)
    VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET
        flow = excluded.flow,
        flow_file = excluded.flow_file,
        status = 'running',
        definition = excluded.definition,
        initial_context = excluded.initial_context,
        finished_at = NULL,
        error = NULL,
        "trigger" = coalesce(excluded."trigger", runs."trigger"),
        event_id = coalesce(excluded.event_id, runs.event_id),
        owner = excluded.owner,
        resumes = runs.resumes + 1,
        resumed_at = excluded.started_at,
        cancel_requested = 0,
        config_path = excluded.config_path,
        parent_run_id = coalesce(excluded.parent_run_id, runs.parent_run_id),
        parent_task_id = coalesce(excluded.parent_task_id, runs.parent_task_id),
        token = excluded.token
"""
_RECORD_TASK: Final = """
    INSERT OR REPLACE INTO task_states
        (run_id, task_id, type, status, attempts, started_at, finished_at, outputs, error)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_RUN_COLUMNS: Final = """
    id, flow, flow_file, status, definition, initial_context, started_at, finished_at, error,
    "trigger", event_id, owner, resumes, resumed_at, cancel_requested, config_path,
    parent_run_id, parent_task_id
"""
_TASK_COLUMNS: Final = (
    "run_id, task_id, type, status, attempts, started_at, finished_at, outputs, error"
)
_TASK_ORDER: Final = "ORDER BY run_id, started_at IS NULL, started_at, task_id"
_GET_RUN: Final = f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?"  # noqa: S608 (constants)
_GET_TASKS: Final = f"SELECT {_TASK_COLUMNS} FROM task_states WHERE run_id = ? {_TASK_ORDER}"  # noqa: S608 (constants)
_FINISH: Final = """
    UPDATE runs SET status = ?, error = ?, finished_at = ?
    WHERE id = ? AND (? IS NULL OR token = ?)
"""
_CANCEL: Final = """
    UPDATE runs SET cancel_requested = 1
    WHERE id = ? AND (? IS NULL OR token = ?) AND (status = 'running'
        OR (status = 'cancelled' AND cancel_requested = 0 AND "trigger" IS NOT NULL))
"""
_PRUNABLE: Final = """
    SELECT id FROM runs
    WHERE parent_run_id IS NULL AND finished_at < ?
      AND NOT (status = 'cancelled' AND cancel_requested = 0 AND "trigger" IS NOT NULL)
    ORDER BY finished_at LIMIT ?
"""
"""Top-level runs that ended before the cutoff, paused ones (`RunRecord.paused`) excepted. A
run's `finished_at` is set only while it is ended: `start_run` clears it."""
_TREE: Final = f"""
    WITH RECURSIVE tree (id, depth) AS (
        SELECT ?, 0
        UNION ALL
        SELECT runs.id, tree.depth + 1 FROM runs JOIN tree ON runs.parent_run_id = tree.id
        WHERE tree.depth < {MAX_DEPTH}
    )
    SELECT id FROM tree ORDER BY depth DESC LIMIT ?
"""  # noqa: S608 (a constant)
"""A run and its descendants, the deepest first."""


class SQLiteRunHistory:
    """A `RunHistory` in the SQLite file at `path` (default `.mfo/runs.db`).

    Use it as an async context manager, or `await close()` when done.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_HISTORY_PATH, *, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self._writer = Writer(str(self.path), self._connect)
        self._tokens = RunTokens()

    @property
    def commits(self) -> int:
        """Write transactions committed so far: fewer than the writes when they were batched."""
        return self._writer.commits

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
        """Finish the calls already made, then close; later calls raise `RunHistoryError`."""
        await self._writer.stop()

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
        config_path: str | None = None,
        parent_run_id: str | None = None,
        parent_task_id: str | None = None,
    ) -> None:
        row = (
            run_id,
            flow_name,
            flow_file,
            json_text(definition_json),
            json_text(initial_context),
            started_at,
            trigger,
            event_id,
            this_process(),
            config_path,
            parent_run_id,
            parent_task_id,
            self._tokens.start(run_id),
        )
        await self._write(lambda conn: conn.execute(_START, row))

    async def record_task(self, run_id: str, result: TaskResult) -> bool:
        token = self._tokens.of(run_id)
        row = (
            run_id,
            result.id,
            result.type,
            result.status.value,
            result.attempts,
            result.started_at,
            result.finished_at,
            json_text(result.outputs),
            result.error,
        )

        def record(conn: sqlite3.Connection) -> bool:
            if token is not None:
                found = conn.execute("SELECT token FROM runs WHERE id = ?", (run_id,)).fetchone()
                if found is not None and found[0] != token:
                    return False
            # An unknown run is refused by the foreign key (IntegrityError), token or not.
            conn.execute(_RECORD_TASK, row)
            return True

        return await self._write(record)

    async def finish_run(
        self, run_id: str, status: RunStatus, error: str | None, finished_at: float
    ) -> bool:
        state = RunState(status.value)
        token = self._tokens.of(run_id)
        args = (state.value, error, finished_at, run_id, token, token)
        finished = await self._write(lambda conn: conn.execute(_FINISH, args).rowcount > 0)
        if finished:
            self._tokens.finished(run_id, token)
        return finished

    async def prune(self, finished_before: float, limit: int) -> int:
        def prune(conn: sqlite3.Connection) -> int:
            deleted = 0
            for (root,) in conn.execute(_PRUNABLE, (finished_before, limit)).fetchall():
                ids = conn.execute(_TREE, (root, limit - deleted)).fetchall()
                deleted += conn.executemany("DELETE FROM runs WHERE id = ?", ids).rowcount
                if deleted >= limit:
                    break
            return deleted

        return await self._write(prune) if limit > 0 else 0

    async def request_cancel(self, run_id: str) -> bool:
        token = self._tokens.of(run_id)

        def request(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(_CANCEL, (run_id, token, token))
            return cursor.rowcount > 0

        return await self._write(request)

    # --- reads (each inside one transaction: one snapshot of a run and its tasks) ---------

    async def cancel_requested(self, run_id: str) -> bool:
        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            return bool(row and row[0])

        return await self._read(read)

    async def get_run(self, run_id: str) -> RunRecord | None:
        def read(conn: sqlite3.Connection) -> RunRecord | None:
            row = conn.execute(_GET_RUN, (run_id,)).fetchone()
            if row is None:
                return None
            tasks = conn.execute(_GET_TASKS, (run_id,)).fetchall()
            return _run(row, _tasks(tasks).get(run_id, ()))

        return await self._read(read)

    async def list_runs(
        self,
        limit: int = 20,
        status: RunState | str | None = None,
        flow: str | None = None,
        trigger: str | None = None,
        event_id: str | None = None,
    ) -> list[RunRecord]:
        # Only the filters given go into the query, so each can use its index.
        filters = (
            ("status", None if status is None else RunState(status).value),
            ("flow", flow),
            ('"trigger"', trigger),
            ("event_id", event_id),
        )
        terms = [f"{column} = ?" for column, value in filters if value is not None]
        args: list[Any] = [value for _, value in filters if value is not None]
        where = f"WHERE {' AND '.join(terms)}" if terms else ""
        runs = f"FROM runs {where} ORDER BY started_at DESC, id LIMIT ?"
        runs_sql = f"SELECT {_RUN_COLUMNS} {runs}"
        in_runs = f"WHERE run_id IN (SELECT id {runs})"
        tasks_sql = f"SELECT {_TASK_COLUMNS} FROM task_states {in_runs} {_TASK_ORDER}"  # noqa: S608 (constants and placeholders)
        args.append(max(0, limit))

        def read(conn: sqlite3.Connection) -> list[RunRecord]:
            rows = conn.execute(runs_sql, args).fetchall()
            tasks = conn.execute(tasks_sql, args).fetchall()
            by_run = _tasks(tasks)
            return [_run(row, by_run.get(row[0], ())) for row in rows]

        return await self._read(read)

    # --- the connection -------------------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._writer.call(fn, write=True)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._writer.call(fn, write=False)

    def _connect(self) -> sqlite3.Connection:
        """Open the file (on the writer's thread) and bring its schema up to date."""
        # Runs hold event data and task outputs: readable by this user only.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.touch(mode=0o600, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
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
        config_path,
        parent_run_id,
        parent_task_id,
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
        config_path=config_path,
        parent_run_id=parent_run_id,
        parent_task_id=parent_task_id,
        tasks=tasks,
    )
