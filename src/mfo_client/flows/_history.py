"""Run history: what each run of a flow did, kept behind a small store interface, and resume.

`RunHistory` is the interface (SQLite in `_history_sqlite`, Redis in `_history_redis`): one
record per run (its flow, definition, initial context, status, trigger) and one per task
(status, attempts, times, outputs, error). With `ExecutionOptions(history=...)` the executor
writes a task's state when it starts and when it ends, and awaits each write before the task
counts as finished, so a succeeded task is on record before any successor starts. A run whose
process died stays `running` in the history.

`resume_run` runs a recorded run again under the same id: tasks that succeeded are not run
again, their recorded outputs are restored for the tasks downstream, and every other task
(failed, skipped, cancelled, or caught running by a crash) runs. `retry_run` starts a new run
(a new id) of a failed or cancelled run's definition, with its initial context, trigger and
event. Outputs and the initial context are kept as JSON (`json_text`): a mapping key that is
not text is kept as its `str()`, and so is a value JSON cannot hold.

A run also records the config file it used (`config_path`, so a resume can use it again) and,
for the child run of a `subflow` task, its parent run and task (`parent_run_id`,
`parent_task_id`). A child's id is `child_run_id(parent, task)`: the same on every attempt of
the task, so a child's MFO calls keep their idempotency keys when the parent is resumed; each
attempt runs the whole child again under that id (recorded as a resume of the child). A child
is resumed or retried only through its parent.

Cancelling goes through the history too (`request_cancel`), so another process can do it: an
executor writing a run's history polls `cancel_requested` and cancels the run when it is set.

Fencing. Two processes can run one run at once: a worker stalls past its lease, another takes
the job over and resumes the run, and the first one only then notices and stops. The one that
started the run last owns its record: each `start_run` stores a fresh token for the run, a
history handle remembers the token of its own last `start_run` of each run, and sends it with
that run's `record_task` and `finish_run`; a write carrying a token that is no longer the run's
is ignored and returns False (the executor logs that once per run, at warning), so the stale
process can neither mark the new owner's tasks cancelled nor end its run. `request_cancel`
carries it too (a parent run's executor cancelling its child run through `mark_cancelled` must
not cancel the child another process runs now). Writes from a handle that never started the
run carry no token and always apply: they are an operator's (`mfo runs cancel`, which uses
`request_cancel` and `mark_cancelled`).

Pruning. `prune` deletes the runs that ended before a cutoff (the store's `retention` in `mfo
serve` and `mfo worker`), with their tasks and child runs, a bounded number per call; a run
still running, or paused (see `RunRecord.paused`), is kept whatever its age.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

from mfo_client.flows._definition import FlowDefinition
from mfo_client.flows._errors import FlowError
from mfo_client.flows._result import FlowResult, RunStatus, TaskResult, TaskStatus

if TYPE_CHECKING:
    from mfo_client.flows._executor import ExecutionOptions, FlowExecutor

__all__ = [
    "DEFAULT_HISTORY_PATH",
    "RunHistory",
    "RunHistoryError",
    "RunRecord",
    "RunState",
    "TaskRecord",
    "check_retryable",
    "child_run_id",
    "definition_of",
    "json_text",
    "mark_cancelled",
    "owner_alive",
    "resume_run",
    "retry_run",
    "this_process",
]

DEFAULT_HISTORY_PATH: Final = ".mfo/runs.db"
"""Where the CLI keeps the run history unless told otherwise (relative to the working dir)."""


class RunHistoryError(FlowError):
    """A run cannot be found, resumed or cancelled; the message says why and what to do."""


class RunState(StrEnum):
    """A recorded run's status: a `RunStatus`, or `running` (also: its process died)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self is not RunState.RUNNING


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task's last recorded state in a run."""

    task_id: str
    type: str
    status: TaskStatus
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as recorded; `tasks` holds the tasks that started (or were settled), by start."""

    run_id: str
    flow: str
    status: RunState
    started_at: float
    definition: Mapping[str, Any]
    """The definition that ran last, as `FlowDefinition.model_dump(mode="json")` gives it."""
    initial_context: Mapping[str, Any]
    flow_file: str | None = None
    finished_at: float | None = None
    error: str | None = None
    trigger: str | None = None
    """What started the run (e.g. a webhook trigger's name); None when run by hand."""
    event_id: str | None = None
    """The event the run is about, when an event triggered it."""
    owner: str | None = None
    """`host:pid` of the process that last started it (see `owner_alive`)."""
    resumes: int = 0
    """How many times the run was resumed."""
    resumed_at: float | None = None
    cancel_requested: bool = False
    config_path: str | None = None
    """The config file the run (its last attempt) used, as an absolute path; None without one."""
    parent_run_id: str | None = None
    """For the child run of a `subflow` task: the parent's run id (and `parent_task_id`)."""
    parent_task_id: str | None = None
    tasks: tuple[TaskRecord, ...] = ()

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    @property
    def paused(self) -> bool:
        """A triggered run that a stopping worker cancelled (not on request): its job is
        still in the store, and the next worker to lease it resumes it."""
        return (
            self.trigger is not None
            and self.status is RunState.CANCELLED
            and not self.cancel_requested
        )

    def task(self, task_id: str) -> TaskRecord | None:
        return next((t for t in self.tasks if t.task_id == task_id), None)


class RunHistory(Protocol):
    """Where runs are recorded. Every write is durable when its call returns."""

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
        """Record a run as running, with a fresh fencing token that makes this handle the
        run's owner (see Fencing). For a known `run_id` (a resume): keep its tasks, first
        start, and the trigger, event and parent it had when these are None; count the resume,
        take the new definition, initial context (a resume passes the recorded one) and config
        path, clear any cancel request."""
        ...

    async def record_task(self, run_id: str, result: TaskResult) -> bool:
        """Insert or replace the task's status, attempts, times, outputs and error; False when
        ignored: another handle started the run after this one did (see Fencing)."""
        ...

    async def finish_run(
        self, run_id: str, status: RunStatus, error: str | None, finished_at: float
    ) -> bool:
        """Record the run's end; False when ignored: no such run, or another handle started
        the run after this one did (see Fencing)."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run with its task records, or None."""
        ...

    async def list_runs(
        self,
        limit: int = 20,
        status: RunState | str | None = None,
        flow: str | None = None,
        trigger: str | None = None,
        event_id: str | None = None,
    ) -> list[RunRecord]:
        """The latest runs first (with their tasks); each filter given must match."""
        ...

    async def request_cancel(self, run_id: str) -> bool:
        """Ask the process running `run_id` to cancel it, or keep a paused run (see
        `RunRecord.paused`) from being resumed; False if it is neither, or another handle
        started the run after this one did (see Fencing)."""
        ...

    async def cancel_requested(self, run_id: str) -> bool: ...

    async def prune(self, finished_before: float, limit: int) -> int:
        """Delete up to `limit` runs that ended (succeeded, failed, cancelled but not paused)
        before `finished_before`, each with its tasks, its place in the listings and its child
        runs (which count toward `limit`, and go first: a run is never left without its parent);
        returns how many. Fewer than `limit` means nothing more is due. A child run is deleted
        only with its parent, whatever its own state."""
        ...

    async def close(self) -> None: ...


_JSON: Final = json.JSONEncoder(default=str, separators=(",", ":"))
"""Built once: `json.dumps` with options builds an encoder per call."""


def json_text(value: Any) -> str:
    """`value` as compact JSON, whatever it holds: a mapping key that is not text becomes its
    `str()` (JSON's own spelling for numbers, booleans and None), and so does a value JSON
    cannot hold (a path, a datetime, a set, an object; a reference cycle)."""
    try:
        return _JSON.encode(value)
    except (TypeError, ValueError):  # a key JSON refuses (a tuple, bytes), or a cycle
        return _JSON.encode(_plain(value, set()))


def _plain(value: Any, active: set[int]) -> Any:
    """`value` with what JSON refuses made text; `active` holds the containers being walked."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if not isinstance(value, Mapping | list | tuple):
        return str(value)
    if id(value) in active:
        return str(value)  # Python's repr of a cycle: "[...]", "{...}"
    active.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {_key(k): _plain(v, active) for k, v in value.items()}
        return [_plain(v, active) for v in value]
    finally:
        active.discard(id(value))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, int | float | bool):
        return json.dumps(key)  # as JSON itself writes such a key: 1 -> "1", True -> "true"
    return str(key)


def child_run_id(run_id: str, task_id: str, index: int | None = None) -> str:
    """The run id of a `subflow` task's child (of item `index` for a `for_each` task)."""
    return f"{run_id}/{task_id}" if index is None else f"{run_id}/{task_id}[{index}]"


def this_process() -> str:
    """The `owner` a run started here records: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process that owns a run still exists: None when it cannot be told (another
    host, or no owner recorded). A recycled pid reads as alive: the safe mistake."""
    if not owner:
        return None
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True


def definition_of(record: RunRecord) -> FlowDefinition:
    """The definition a run last ran, rebuilt from its record."""
    source = record.flow_file or f"<run {record.run_id}>"
    return FlowDefinition.model_validate({**record.definition, "source": source})


async def resume_run(
    executor: FlowExecutor,
    history: RunHistory,
    run_id: str,
    *,
    definition: FlowDefinition | None = None,
    options: ExecutionOptions | None = None,
    force: bool = False,
) -> FlowResult:
    """Run `run_id` again under the same id, restoring what succeeded; see the module docs.

    `definition` replaces the recorded one (a flow file fixed since); tasks it no longer has
    are ignored. `options` gives the rest (fail_fast, observer, ...): its run id, history and
    restored outputs are set here. Raises `RunHistoryError` for an unknown or succeeded run,
    and for one still running in a live process on this host (unless `force`).
    """
    from mfo_client.flows._executor import ExecutionOptions

    record = await history.get_run(run_id)
    if record is None:
        raise RunHistoryError(f'no run "{run_id}" in the run history')
    _check_not_child(record, "resume")
    if record.status is RunState.SUCCEEDED:
        raise RunHistoryError(
            f'run "{run_id}" already succeeded; nothing to resume (start a new run instead)'
        )
    # Only a process known to be gone is safe to take over: one on another host (or in
    # another container) cannot be checked from here, so that needs `force`.
    if record.status is RunState.RUNNING and not force and owner_alive(record.owner) is not False:
        raise RunHistoryError(
            f'run "{run_id}" may still be running in process {record.owner}; cancel it first '
            "(mfo runs cancel), or force the resume if that process is not running it"
        )
    if definition is None:
        definition = definition_of(record)
    ids = {task.id for task in definition.tasks}
    restored = {
        t.task_id: dict(t.outputs)
        for t in record.tasks
        if t.status is TaskStatus.SUCCEEDED and t.task_id in ids
    }
    options = dataclasses.replace(
        options or ExecutionOptions(), run_id=run_id, history=history, restored=restored
    )
    return await executor.execute_flow(definition, record.initial_context, options)


async def retry_run(
    executor: FlowExecutor,
    history: RunHistory,
    run_id: str,
    *,
    definition: FlowDefinition | None = None,
    options: ExecutionOptions | None = None,
) -> FlowResult:
    """Run a failed or cancelled run again as a new run: every task runs, under a new id.

    The new run has the recorded initial context, trigger and event; `definition` replaces
    the recorded one (a flow file fixed since). `options` gives the rest; its `run_id`, when
    set, is the new run's id (the caller may want to print it before the run starts), else a
    new one is made. Raises `RunHistoryError` for an unknown run, a child run, or one that
    succeeded or is still recorded as running (resume or cancel that first).
    """
    from mfo_client.flows._executor import ExecutionOptions

    record = await history.get_run(run_id)
    if record is None:
        raise RunHistoryError(f'no run "{run_id}" in the run history')
    check_retryable(record)
    options = options or ExecutionOptions()
    new_id = options.run_id or uuid.uuid4().hex
    if new_id == run_id:
        raise RunHistoryError(f'a retry of run "{run_id}" needs a new run id (resume keeps it)')
    options = dataclasses.replace(
        options,
        run_id=new_id,
        history=history,
        restored={},
        trigger=record.trigger,
        event_id=record.event_id,
    )
    return await executor.execute_flow(
        definition or definition_of(record), record.initial_context, options
    )


def check_retryable(record: RunRecord) -> None:
    """Raise `RunHistoryError` unless `record` is a failed or cancelled run of its own."""
    _check_not_child(record, "retry")
    if not record.status.is_final:
        raise RunHistoryError(
            f'run "{record.run_id}" is recorded as running; retry only a failed or cancelled '
            "run (resume it, or cancel it first with mfo runs cancel)"
        )
    if record.status is RunState.SUCCEEDED:
        raise RunHistoryError(
            f'run "{record.run_id}" succeeded; retry only a failed or cancelled run '
            "(start a new run with mfo flow run)"
        )
    if record.paused:
        raise RunHistoryError(
            f'run "{record.run_id}" was paused when its worker stopped and resumes when a '
            "worker runs again; to retry it instead, cancel it first (mfo runs cancel)"
        )


async def mark_cancelled(history: RunHistory, run_id: str, reason: str) -> None:
    """Record `run_id` as cancelled, with each of its tasks still recorded as running: for a
    run that cannot record its own end (its process is gone, or its parent task was cancelled).
    Through a handle that started the run, this is fenced like its other writes: nothing
    changes if another handle started the run since."""
    record = await history.get_run(run_id)
    if record is None or record.status.is_final:
        return
    now = time.time()
    for task in record.tasks:
        if not task.status.is_final:
            await history.record_task(
                run_id,
                TaskResult(
                    id=task.task_id,
                    type=task.type,
                    status=TaskStatus.CANCELLED,
                    attempts=task.attempts,
                    started_at=task.started_at,
                    finished_at=now,
                    outputs=dict(task.outputs),
                    error=reason,
                ),
            )
    # On request: a worker that finds the run's job must not resume it (see `worker`).
    await history.request_cancel(run_id)
    await history.finish_run(run_id, RunStatus.CANCELLED, reason, now)


def _check_not_child(record: RunRecord, action: str) -> None:
    """A child run is refused: only its parent can hand its result on to the tasks after the
    subflow task."""
    if record.parent_run_id is not None:
        raise RunHistoryError(
            f'run "{record.run_id}" is the child run of task "{record.parent_task_id}" of run '
            f'"{record.parent_run_id}"; {action} that run instead (its subflow task runs the '
            "child again)"
        )
