"""The Redis run history: the `RunHistory` several listener and worker processes share.

Keys, all under `<prefix>:runs:` (values such as run ids and flow names go last in a key, after a
fixed part, so no value can make one key look like another):

- `run:<id>`: a hash per run, with the fields of `RunRecord` (the definition and the initial
  context as JSON; a field that is None is absent) and `token`, the id of the `start_run` call
  that wrote it last, which is also the run's fence (see Fencing in `_history`);
- `tasks:<id>`: a hash per run, task id -> the task's record as JSON;
- `all`, `status:<state>`, `flow:<name>`, `trigger:<name>`, `event:<id>`, `children:<run id>`:
  sorted sets of run ids scored by `started_at`, the indexes `list_runs` walks.

Atomic. Every write is one call of one Lua script (`WRITE`, in `_history_redis_lua`), which
updates the run's hash and moves the run between the indexes together (and checks the writer's
fencing token), so a reader never sees a run half-written or in the wrong index; `get_run` reads
the two hashes in one MULTI/EXEC. `list_runs` and `prune` walk an index in steps, one script
call (`LIST`, `PRUNE`) looking at `max_scan` entries at most, so a filter that rarely matches or
a large backlog to prune never holds the server for long; each step is consistent on its own,
and a run changed between two steps is listed as one of them saw it (never twice). The scripts
build their keys from the prefix, so on a Redis Cluster the prefix must be a hash tag (`{mfo}`)
to keep them in one slot.

Order and speed (like `_history_writer` for SQLite). Writes go through one FIFO queue drained by
one task: whatever is queued while a batch is on the wire goes out next as one pipeline (one
round trip for all of it), and writes land in the order they were made, so a task's `running`
state never overwrites its final one. A write runs even when its caller stops waiting
(cancelled). A call returns when Redis has acknowledged its write: durable as far as the
server's persistence goes (AOF with `appendfsync everysec` or `always` for a restart of Redis).
A pipeline re-sent by the client after a lost connection is harmless: `start_run` remembers the
call it applied last (`token`), and the other writes set values rather than add to them.

Each read runs in a task of its own that its caller awaits through `asyncio.shield`: a caller
cancelled mid-read always gets its CancelledError (on Python 3.11, redis-py can swallow one that
lands as a command completes, and the executor's cancel poll would then never stop). Redis
errors (cannot connect, out of memory) are raised as `RunHistoryError`, naming the server without
the credentials of its URL.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from mfo_client._urls import strip_credentials, userinfo_needs_encoding
from mfo_client.flows._history import (
    RunHistoryError,
    RunRecord,
    RunState,
    TaskRecord,
    json_text,
    this_process,
)
from mfo_client.flows._history_redis_lua import LIST, PRUNE, WRITE
from mfo_client.flows._history_tokens import RunTokens
from mfo_client.flows._result import RunStatus, TaskResult, TaskStatus

__all__ = ["RedisRunHistory"]

T = TypeVar("T")

MAX_BATCH: Final = 256
"""Most writes in one pipeline: bounds how long one batch keeps the next waiting."""
MAX_SCAN: Final = 1000
"""Most index entries one `LIST` or `PRUNE` call looks at (the default of `max_scan`)."""
PRUNE_BUDGET: Final = 100
"""Most runs one `PRUNE` call deletes."""
_PRUNED_STATES: Final = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


@dataclass(slots=True)
class _Script:
    text: str
    sha: str | None = None


@dataclass(frozen=True, slots=True)
class _Write:
    args: tuple[str, ...]
    future: asyncio.Future[int]


def _opt(value: str | None) -> str:
    """An optional value for the scripts, which cannot take a nil: '-', or '=' and the value."""
    return "-" if value is None else f"={value}"


class RedisRunHistory:
    """A `RunHistory` in the Redis at `url`, every key under `<prefix>:runs:`.

    Use it as an async context manager, or `await close()` when done. It serves one event loop
    (the one of its first call).
    """

    def __init__(self, url: str, prefix: str = "mfo", *, max_scan: int = MAX_SCAN) -> None:
        self.prefix = prefix
        self.where = self.describe(url, prefix)
        """The server without the credentials its URL may hold, and the prefix: for messages."""
        try:
            if userinfo_needs_encoding(url):  # else read as a host or port, shown in errors
                raise ValueError(url)
            self._client = aioredis.Redis.from_url(url, decode_responses=True)
        except ValueError:
            # Not the parser's text: it quotes the piece it choked on, maybe of the password.
            raise RunHistoryError(
                f"the Redis URL of the run history {self.where} is not usable: check the host "
                "and port, and percent-encode a /, ? or # in the password (%2F, %3F, %23)"
            ) from None
        self._write_script = _Script(WRITE)
        self._list_script = _Script(LIST)
        self._prune_script = _Script(PRUNE)
        self.max_scan = max(1, max_scan)
        """Most index entries one script call of `list_runs` or `prune` looks at."""
        self._tokens = RunTokens()
        self._queue: deque[_Write] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._reads: set[asyncio.Future[Any]] = set()
        self._closed = False
        self.batches = 0
        """Pipelines of writes sent so far: fewer than the writes when they were batched."""

    @staticmethod
    def describe(url: str, prefix: str) -> str:
        """How messages name the history at `url` and `prefix`: without the URL's credentials."""
        return f"{strip_credentials(url)} (prefix {prefix})"

    async def __aenter__(self) -> RedisRunHistory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Finish the writes already made, then close; later calls raise `RunHistoryError`."""
        if self._closed:
            return
        self._closed = True
        if self._drainer is not None:
            await asyncio.shield(self._drainer)
        if self._reads:  # those whose callers stopped waiting
            await asyncio.gather(*self._reads, return_exceptions=True)
        await self._client.aclose()

    def _key(self, kind: str, value: str) -> str:
        return f"{self.prefix}:runs:{kind}:{value}"

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
        await self._write(
            "start",
            run_id,
            self._tokens.start(run_id),
            flow_name,
            _opt(flow_file),
            json_text(definition_json),
            json_text(initial_context),
            repr(float(started_at)),
            _opt(trigger),
            _opt(event_id),
            _opt(this_process()),
            _opt(config_path),
            _opt(parent_run_id),
            _opt(parent_task_id),
        )

    async def record_task(self, run_id: str, result: TaskResult) -> bool:
        record = {
            "type": result.type,
            "status": result.status.value,
            "attempts": result.attempts,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "error": result.error,
            "outputs": result.outputs,
        }
        token = _opt(self._tokens.of(run_id))
        written = await self._write("task", run_id, result.id, json_text(record), token)
        if not written:
            raise RunHistoryError(
                f'cannot record task "{result.id}" of run "{run_id}": no such run in the run '
                f"history {self.where} (start_run records a run first)"
            )
        return written > 0

    async def finish_run(
        self, run_id: str, status: RunStatus, error: str | None, finished_at: float
    ) -> bool:
        state = RunState(status.value)
        token = self._tokens.of(run_id)
        end = (state.value, _opt(error), repr(float(finished_at)), _opt(token))
        finished = await self._write("finish", run_id, *end) > 0
        if finished:
            self._tokens.finished(run_id, token)
        return finished

    async def request_cancel(self, run_id: str) -> bool:
        return await self._write("cancel", run_id, _opt(self._tokens.of(run_id))) > 0

    async def _write(self, op: str, run_id: str, *values: str) -> int:
        """Queue one call of the write script; returns its result once Redis acknowledged it."""
        if self._closed:
            raise RunHistoryError(f"the run history {self.where} is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write((op, self.prefix, run_id, *values), future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name="mfo-history-redis")
        return await future

    async def _drain(self) -> None:
        """Send what is queued, a pipeline at a time, until nothing is left."""
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
                try:
                    outcomes = await self._send(batch)
                except Exception as exc:
                    outcomes = [self._error(exc)] * len(batch)
                except BaseException:  # cancelled (the loop is ending): no caller may hang
                    error = RunHistoryError(f"the run history {self.where} was stopped")
                    for write in (*batch, *self._queue):
                        _settle(write.future, error)
                    self._queue.clear()
                    raise
                for write, outcome in zip(batch, outcomes, strict=True):
                    _settle(write.future, outcome)
        finally:
            self._drainer = None

    async def _send(self, batch: list[_Write]) -> list[int | Exception]:
        """One pipeline for the batch; the calls refused for a script Redis lacks (flushed, or
        restarted) are loaded and sent again, in order."""
        outcomes: list[int | Exception] = [0] * len(batch)
        todo = list(range(len(batch)))
        for _ in range(2):
            sha = await self._sha(self._write_script)
            async with self._client.pipeline(transaction=False) as pipe:
                for i in todo:
                    pipe.evalsha(sha, 0, *batch[i].args)
                results = await pipe.execute(raise_on_error=False)
            self.batches += 1
            missing = []
            for i, result in zip(todo, results, strict=True):
                if isinstance(result, NoScriptError):
                    missing.append(i)
                outcomes[i] = self._error(result) if isinstance(result, Exception) else int(result)
            if not missing:
                break
            self._write_script.sha = None
            todo = missing
        return outcomes

    # --- reads ----------------------------------------------------------------------------

    async def cancel_requested(self, run_id: str) -> bool:
        async def read() -> Any:
            return await self._client.hget(self._key("run", run_id), "cancel_requested")

        return bool(await self._read(read) == "1")

    async def get_run(self, run_id: str) -> RunRecord | None:
        async def read() -> list[Any]:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hgetall(self._key("run", run_id))
                pipe.hgetall(self._key("tasks", run_id))
                return await pipe.execute()

        fields, tasks = await self._read(read)
        return _record(run_id, fields, tasks) if fields else None

    async def list_runs(
        self,
        limit: int = 20,
        status: RunState | str | None = None,
        flow: str | None = None,
        trigger: str | None = None,
        event_id: str | None = None,
    ) -> list[RunRecord]:
        state = None if status is None else RunState(status).value
        args: list[str] = []
        for kind, field, value in (
            ("status", "status", state),
            ("flow", "flow", flow),
            ("trigger", "trigger", trigger),
            ("event", "event_id", event_id),
        ):
            if value is not None:
                args += [kind, field, value]
        if limit <= 0:
            return []

        async def read() -> list[Any]:
            rows: dict[str, Any] = {}  # by id: a run seen by two steps is listed once
            top, seen, cutoff = "+inf", 0, "-"
            while True:
                want = limit - len(rows) if cutoff == "-" else 0
                found, top, seen, done, cutoff = await self._eval(
                    self._list_script,
                    self.prefix,
                    str(want),
                    cutoff,
                    top,
                    str(seen),
                    str(self.max_scan),
                    *args,
                )
                for row in found:
                    rows[row[0]] = row
                if done:
                    return list(rows.values())

        rows = await self._read(read)
        records = [_record(run_id, _pairs(fields), _pairs(tasks)) for run_id, fields, tasks in rows]
        records.sort(key=lambda r: (-r.started_at, r.run_id))
        return records[:limit]

    async def prune(self, finished_before: float, limit: int) -> int:
        cutoff = repr(float(finished_before))

        async def prune() -> int:
            deleted = 0
            for state in _PRUNED_STATES:
                skip, done = 0, False
                while not done and deleted < limit:
                    budget = min(limit - deleted, PRUNE_BUDGET)
                    pruned, skip, done = await self._eval(
                        self._prune_script,
                        self.prefix,
                        state.value,
                        cutoff,
                        str(skip),
                        str(self.max_scan),
                        str(budget),
                    )
                    deleted += pruned
            return deleted

        return await self._read(prune) if limit > 0 else 0

    async def _eval(self, script: _Script, *args: str) -> Any:
        """One call of a read or prune script, loaded again if Redis lost it."""
        for _ in range(2):
            sha = await self._sha(script)
            try:
                return await self._client.evalsha(sha, 0, *args)
            except NoScriptError:  # Redis restarted, or its scripts were flushed
                script.sha = None
        raise RunHistoryError(f"the run history {self.where} cannot keep its Lua script")

    async def _read(self, read: Callable[[], Awaitable[T]]) -> T:
        """Run `read` in a task of its own, so a caller that stops waiting is sure to get its
        CancelledError: on Python 3.11, redis-py can swallow a cancellation that lands as a
        command completes (`asyncio.wait_for` around its socket writes)."""
        if self._closed:
            raise RunHistoryError(f"the run history {self.where} is closed")
        task = asyncio.ensure_future(self._translated(read))
        self._reads.add(task)
        task.add_done_callback(self._read_done)
        return await asyncio.shield(task)

    async def _translated(self, read: Callable[[], Awaitable[T]]) -> T:
        try:
            return await read()
        except RedisError as exc:
            raise self._error(exc) from exc

    def _read_done(self, task: asyncio.Future[Any]) -> None:
        self._reads.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its caller may have stopped waiting

    async def _sha(self, script: _Script) -> str:
        if script.sha is None:
            script.sha = await self._client.script_load(script.text)
        return script.sha

    # --- errors ---------------------------------------------------------------------------

    def _error(self, exc: Exception) -> Exception:
        if not isinstance(exc, RedisError):
            return exc
        return RunHistoryError(f"the run history {self.where} failed: {exc}")


def _settle(future: asyncio.Future[int], outcome: int | Exception) -> None:
    if future.done():  # the caller stopped waiting
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _pairs(flat: list[str]) -> dict[str, str]:
    """A hash as the scripts return it (field, value, field, value, ...) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _record(run_id: str, fields: Mapping[str, str], tasks: Mapping[str, str]) -> RunRecord:
    records = [_task(task_id, json.loads(text)) for task_id, text in tasks.items()]
    records.sort(key=lambda t: (t.started_at is None, t.started_at or 0.0, t.task_id))
    return RunRecord(
        run_id=run_id,
        flow=fields["flow"],
        status=RunState(fields["status"]),
        started_at=float(fields["started_at"]),
        definition=json.loads(fields["definition"]),
        initial_context=json.loads(fields["initial_context"]),
        flow_file=fields.get("flow_file"),
        finished_at=_float(fields.get("finished_at")),
        error=fields.get("error"),
        trigger=fields.get("trigger"),
        event_id=fields.get("event_id"),
        owner=fields.get("owner"),
        resumes=int(fields.get("resumes", 0)),
        resumed_at=_float(fields.get("resumed_at")),
        cancel_requested=fields.get("cancel_requested") == "1",
        config_path=fields.get("config_path"),
        parent_run_id=fields.get("parent_run_id"),
        parent_task_id=fields.get("parent_task_id"),
        tasks=tuple(records),
    )


def _task(task_id: str, data: dict[str, Any]) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        type=data["type"],
        status=TaskStatus(data["status"]),
        attempts=data["attempts"],
        started_at=data["started_at"],
        finished_at=data["finished_at"],
        outputs=data["outputs"],
        error=data["error"],
    )
