"""The flow executor: runs a validated DAG with bounded concurrency and never hangs or leaks.

Hand-written scheduling (graphlib validates and orders, but cannot express priorities, skips
and cancellation): a ready heap ordered by priority then file order, a count of unfinished
predecessors per task, and at most `concurrency` tasks in flight. Async tasks run on the event
loop, sync tasks in a thread pool. Every exception a task raises is caught and recorded; the
only way out of `execute_flow` is a `FlowResult` (or the caller's own cancellation, after every
task it started has been cancelled and awaited).

Skips: a task whose predecessor failed, was cancelled, or was skipped because of those, is
skipped ("upstream failed"). A task whose `when:` is false is skipped, and so is a task all of
whose predecessors were skipped that way; a task with at least one predecessor that ran still
runs. A `condition` task skips its successors outside the chosen branch, and that skip spreads
the same way.

Control flow (`_control`): `condition` and `subflow` are run here, not by registry factories,
but go through the same attempt (timeout, retries) as any task. A subflow runs its child with
`execute_flow` of this executor: the child is a run of its own with its own `concurrency`
slots, so the parent's slot held by the waiting subflow task is never one the child needs (no
deadlock at any concurrency or depth; the tasks in flight are at most `concurrency` per level).
A task with `for_each` runs its attempt once per item, at most `max_parallel` at once, inside
its one slot; each item has its own retries. Its `when:` filters the items when it reads `item`
or `index` (a false one skips that item, whose result is None), and otherwise gates the whole
task before its list is evaluated.

Tasks that do not stop when told to: Python cannot stop a thread, so a sync attempt that times
out (or is cancelled) is abandoned with its thread still running, logged once, and its
`ctx.cancelled` set; a retry first waits for that thread to end, within its own timeout, so two
copies of a task never run at once, and the flow's timeout or a cancel still ends the run. An
async task that swallows its cancellation is waited for `CANCEL_GRACE` seconds, then recorded as
cancelled (or timed out) and left behind, logged.

A task named like a top-level key of the initial context (`input`, `event`) would hide that
key from every task after it: such a run fails at its start, saying so (`hidden_keys`).

Each definition's graph (predecessors, successors, counts) is analysed once and kept for its
next runs (`_Graph`): a run allocates little per task, so a big run does not wake the garbage
collector's full passes (the 10,000-task benchmarks cost about 10x the 1,000-task ones).

History: with `ExecutionOptions(history=...)` the run's start, each task's start and final
state, and its end are written to the history, each write awaited before the run moves on (a
task's final state before its successors are released); the history's cancel request is polled
every `CANCEL_POLL_INTERVAL` seconds. Without it, none of this costs anything. A subflow's
child is recorded too, as a run of its own linked to its parent run and task. A write the
history ignores because another process started the run since (fencing, see `_history`) is
logged once per run, at warning, and the run goes on: its record is that process's now.

Secrets (`_secrets`): each run has a `SecretScope`; `${VAR}` in task configs are expanded from
it when the task is rendered, and its secret values are replaced by `***` in each task's result
(outputs, error), so the observer, the history and the caller never see them; `data`, which
tasks downstream read, keeps the real values.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import heapq
import inspect
import logging
import os
import time
import uuid
from collections import ChainMap
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from mfo_client.flows._context import FlowClients, FlowContext, TaskInfo
from mfo_client.flows._control import (
    CONDITION,
    CONSTRUCTS,
    ConditionConfig,
    SubflowConfig,
    child_definition,
    child_path,
)
from mfo_client.flows._definition import FlowDefinition, TaskDefinition
from mfo_client.flows._errors import FlowDefinitionError, TaskError, TemplateError
from mfo_client.flows._history import child_run_id
from mfo_client.flows._registry import TaskCallable, TaskRegistry
from mfo_client.flows._result import FlowResult, RunStatus, TaskResult, TaskStatus
from mfo_client.flows._secrets import SecretScope
from mfo_client.flows._templates import has_templates, render_config

if TYPE_CHECKING:
    from mfo_client.flows._history import RunHistory

__all__ = ["ExecutionOptions", "FlowExecutor", "hidden_keys", "run_flow"]

_log = logging.getLogger("mfo_client.flows")

_UPSTREAM_FAILED = "skipped: an upstream task did not succeed"
_CONDITION_FALSE = "skipped: when-condition is false"
_UPSTREAM_SKIPPED = "skipped: every upstream task was skipped by its condition"

CANCEL_POLL_INTERVAL = 0.5
"""Seconds between two checks of the run history's cancel request."""
_GRAPHS_KEPT = 64
CANCEL_GRACE = 5.0
"""Seconds a cancelled async task may take to end. One that ignores its cancellation longer is
recorded as cancelled and left behind (logged), so it cannot hold up a timeout or a cancel."""


@dataclass(slots=True)
class ExecutionOptions:
    fail_fast: bool = False
    """On the first failure, cancel the tasks in flight and skip the rest."""
    timeout: float | None = None
    """Seconds for the whole run; defaults to the definition's `timeout`."""
    run_id: str | None = None
    cancel: asyncio.Event | None = None
    """Set it to cancel the run: tasks in flight are cancelled, the rest skipped."""
    observer: Callable[[TaskResult], None] | None = None
    """Called when a task starts and when it reaches a final status (live progress, history)."""
    restored: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Outputs of tasks that already succeeded in an earlier attempt of this run (resume):
    they are not run again, and their outputs are visible downstream."""
    history: RunHistory | None = None
    """Where to record the run (see `mfo_client.flows._history`); its cancel request cancels
    the run. A failure to record the start raises; later write failures are logged."""
    trigger: str | None = None
    """What started the run (e.g. a webhook trigger's name), recorded in the history."""
    event_id: str | None = None
    """The event the run is about, recorded in the history."""
    config_path: str | None = None
    """The config file the run uses, recorded in the history (a resume can use it again)."""
    parent: tuple[str, str] | None = None
    """(run id, task id) of the `subflow` task this run is the child of; set by the executor."""
    secrets: Sequence[str] = ()
    """Secret values to hide from what the run reports, besides its `${VAR}` secrets and the
    clients' (`FlowClients.secrets`); see `mfo_client.flows._secrets`."""
    environ: Mapping[str, str] | None = None
    """Where `${VAR}` in task configs is read from; `os.environ` by default."""


@dataclass(frozen=True, slots=True)
class _Graph:
    """What every run of a definition shares: built once, read-only (see `FlowExecutor._graph`)."""

    tasks: Mapping[str, TaskDefinition]
    order: Mapping[str, int]
    """Position in the file: the tie-break among ready tasks of the same priority."""
    preds: Mapping[str, tuple[str, ...]]
    succs: Mapping[str, tuple[str, ...]]
    waiting: dict[str, int]
    """Predecessors per task: each run counts down its own copy."""

    @classmethod
    def of(cls, definition: FlowDefinition) -> _Graph:
        tasks = {t.id: t for t in definition.tasks}
        order = {t.id: i for i, t in enumerate(definition.tasks)}
        preds = {
            tid: tuple(sorted(p, key=order.__getitem__))
            for tid, p in definition.predecessors().items()
        }
        succs: dict[str, list[str]] = {tid: [] for tid in tasks}
        for tid, ps in preds.items():
            for p in ps:
                succs[p].append(tid)
        # Tuples of strings, unlike lists, leave the garbage collector's view at its first pass.
        return cls(
            tasks,
            order,
            preds,
            {tid: tuple(s) for tid, s in succs.items()},
            {tid: len(ps) for tid, ps in preds.items()},
        )


class _Run:
    """The state of one execution; lives only inside `execute_flow`."""

    def __init__(
        self,
        executor: FlowExecutor,
        definition: FlowDefinition,
        initial: Mapping[str, Any],
        options: ExecutionOptions,
    ) -> None:
        self.executor = executor
        self.definition = definition
        self.options = options
        self.run_id = options.run_id or uuid.uuid4().hex
        self.initial = copy.deepcopy(dict(initial))
        self.data: dict[str, Any] = dict(self.initial)
        graph = executor._graph(definition)
        self.tasks = graph.tasks
        self.order = graph.order
        self.preds = graph.preds
        self.succs = graph.succs
        self.waiting = graph.waiting.copy()
        self.results = {t.id: TaskResult(id=t.id, type=t.type) for t in definition.tasks}
        self.ready: list[tuple[int, int, str]] = []
        self.running: dict[asyncio.Task[None], str] = {}
        self.stopping = False
        self.funcs: dict[str, TaskCallable] = {}
        """Callables of tasks whose config has no templates: built once per run."""
        self.failed = False
        self.history = options.history
        self.cancel = options.cancel
        if self.cancel is None and self.history is not None:
            self.cancel = asyncio.Event()
        self.unchosen: dict[str, str] = {}
        """Successors of a finished condition outside its chosen branch -> the condition."""
        self.recorded: dict[str, tuple[TaskStatus, str | None]] = {}
        self.fenced = False
        """The history ignored a write: another process started this run since."""
        self.deadline: float | None = None
        """When the flow's timeout ends the run, as `time.monotonic()`; tasks see it."""
        self.secrets = SecretScope.for_run(
            definition,
            secrets=(*executor.clients.secrets, *options.secrets),
            secret_env=executor.clients.secret_env,
            environ=options.environ,
        )
        """What `${VAR}` may read, and the values hidden from what the run reports: a task's
        outputs and error are redacted in its result, not in `data` (tasks downstream)."""
        """What the history holds of each task (status, error): what is left to write at the end."""

    async def record(self, result: TaskResult) -> None:
        """Write `result` to the history; a failed write is logged, the run goes on."""
        assert self.history is not None
        try:
            written = await self.history.record_task(self.run_id, copy.copy(result))
        except Exception:
            _log.exception("run %s: cannot record task %s in the history", self.run_id, result.id)
        else:
            self.recorded[result.id] = (result.status, result.error)
            if written is False:
                self.ignored()

    def ignored(self) -> None:
        """The history ignored a write of this run (fenced off): say so once."""
        if not self.fenced:
            self.fenced = True
            _log.warning(
                "run %s: another process started this run since (a worker that took its job "
                "over, or a resume); the run history keeps that process's record and ignores "
                "this one's writes",
                self.run_id,
            )

    def push_ready(self, tid: str) -> None:
        heapq.heappush(self.ready, (-self.tasks[tid].priority, self.order[tid], tid))

    def finish(self, tid: str) -> None:
        """`tid` reached a final status: settle or release its successors.

        Iterative, not recursive: a failure at the head of a long chain skips thousands of
        tasks, which recursion would turn into a RecursionError.
        """
        stack = [tid]
        while stack:
            done = stack.pop()
            for succ in self.succs[done]:
                self.waiting[succ] -= 1
                if self.waiting[succ] == 0 and self.results[succ].status is TaskStatus.PENDING:
                    reason = self.skip_reason(succ)
                    if reason is None:
                        self.push_ready(succ)
                    else:
                        self.mark_skipped(succ, reason)
                        stack.append(succ)

    def skip_reason(self, tid: str) -> str | None:
        """Why `tid` must be skipped now that its predecessors are final, or None to run it."""
        statuses = [self.results[p] for p in self.preds[tid]]
        if any(r.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) for r in statuses) or any(
            r.status is TaskStatus.SKIPPED and r.error == _UPSTREAM_FAILED for r in statuses
        ):
            return _UPSTREAM_FAILED
        if self.unchosen and tid in self.unchosen:
            return f"skipped: not the branch chosen by {self.unchosen[tid]}"
        if statuses and all(r.status is TaskStatus.SKIPPED for r in statuses):
            return _UPSTREAM_SKIPPED
        return None

    def resolve(self, tid: str) -> None:
        """All predecessors are final: skip `tid`, or make it ready to run."""
        reason = self.skip_reason(tid)
        if reason is None:
            self.push_ready(tid)
        else:
            self.skip(tid, reason)

    def mark_skipped(self, tid: str, reason: str) -> None:
        result = self.results[tid]
        result.status = TaskStatus.SKIPPED
        result.error = reason
        self.notify(result)

    def skip(self, tid: str, reason: str) -> None:
        self.mark_skipped(tid, reason)
        self.finish(tid)

    def notify(self, result: TaskResult) -> None:
        if self.options.observer is not None:
            try:
                self.options.observer(result)
            except Exception:  # a broken observer must not break the run
                _log.exception("flow observer failed")

    def restore(self) -> None:
        for tid, outputs in self.options.restored.items():
            if tid in self.results:
                result = self.results[tid]
                result.status = TaskStatus.SUCCEEDED
                result.outputs = dict(outputs)
                result.error = "restored from an earlier attempt of this run"
                self.data[tid] = result.outputs


class FlowExecutor:
    """Runs flow definitions with the task types of `registry`.

    `concurrency` bounds the tasks in flight per run; `clients` are what tasks may use (the MFO
    client, an HTTP client, task settings). Sync tasks run in a thread pool of that size.
    """

    def __init__(
        self,
        registry: TaskRegistry,
        concurrency: int = 8,
        clients: FlowClients | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.registry = registry
        self.concurrency = concurrency
        self.clients = clients or FlowClients()
        self._threads: ThreadPoolExecutor | None = None
        self._children: dict[str, tuple[int, FlowDefinition]] = {}
        self._graphs: dict[int, tuple[FlowDefinition, _Graph]] = {}
        """The graph of each definition run lately, by identity (the definition is kept, so
        its id is not reused): a flow run again and again is not analysed again."""
        """Subflow files by path, with the modification time they were read at."""

    def _graph(self, definition: FlowDefinition) -> _Graph:
        cached = self._graphs.pop(id(definition), None)
        if cached is None or cached[0] is not definition:
            cached = (definition, _Graph.of(definition))
            if len(self._graphs) >= _GRAPHS_KEPT:
                del self._graphs[next(iter(self._graphs))]  # the least recently run
        self._graphs[id(definition)] = cached
        return cached[1]

    def _pool(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="mfo-task")
        return self._threads

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    async def execute_flow(
        self,
        definition: FlowDefinition,
        initial_context: Mapping[str, Any] | None = None,
        options: ExecutionOptions | None = None,
    ) -> FlowResult:
        """Run `definition` to the end and return what happened; task errors never escape."""
        options = options or ExecutionOptions()
        run = _Run(self, definition, initial_context or {}, options)
        started = time.time()
        timeout = options.timeout
        if timeout is None and definition.timeout is not None:
            timeout = definition.timeout.total_seconds()
        if timeout is not None:
            run.deadline = time.monotonic() + timeout
        if run.history is not None:
            source = definition.source
            await run.history.start_run(
                run.run_id,
                definition.name,
                None if source.startswith("<") else source,
                definition.model_dump(mode="json"),
                run.secrets.redactor.value(run.initial),
                started,
                trigger=options.trigger,
                event_id=options.event_id,
                config_path=options.config_path,
                parent_run_id=options.parent[0] if options.parent else None,
                parent_task_id=options.parent[1] if options.parent else None,
            )
        error = hidden_keys(definition, run.initial)
        if error is not None:  # no task runs: the run fails, on record, saying why
            for result in run.results.values():
                result.status = TaskStatus.SKIPPED
                result.error = "skipped: the run did not start"
        else:
            run.restore()
            for tid in run.tasks:
                if run.results[tid].status is TaskStatus.PENDING and run.waiting[tid] == 0:
                    run.resolve(tid)
            # Restored tasks release their successors once the roots are resolved.
            for tid in run.options.restored:
                if tid in run.tasks:
                    run.finish(tid)
        cancelled = False
        poller = asyncio.create_task(self._poll_cancel(run)) if run.history is not None else None
        try:
            async with asyncio.timeout(timeout):
                cancelled = await self._schedule(run)
        except TimeoutError:
            error = f"the flow timed out after {timeout:g}s"
            await self._cancel_all(run, "cancelled: the flow timed out")
        finally:
            if poller is not None:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
            if run.running:  # the caller cancelled us: leave nothing running behind
                await self._cancel_all(run, "cancelled")
        if cancelled:
            error = "the run was cancelled"
        for result in run.results.values():
            if not result.status.is_final:
                result.status = TaskStatus.SKIPPED if not cancelled else TaskStatus.CANCELLED
                result.error = result.error or ("cancelled" if cancelled else _UPSTREAM_FAILED)
        status = RunStatus.SUCCEEDED
        if cancelled:
            status = RunStatus.CANCELLED
        elif error is not None or any(
            r.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) for r in run.results.values()
        ):
            status = RunStatus.FAILED
        if error is None and status is RunStatus.FAILED:
            failed = [r.id for r in run.results.values() if r.status is TaskStatus.FAILED]
            error = f"task{'s' if len(failed) > 1 else ''} failed: {', '.join(failed)}"
        outcome = FlowResult(
            flow=definition.name,
            run_id=run.run_id,
            status=status,
            tasks=run.results,
            started_at=started,
            finished_at=time.time(),
            error=error,
        )
        if run.history is not None:
            await self._record_end(run, outcome)
        return outcome

    async def _record_end(self, run: _Run, result: FlowResult) -> None:
        """Write the final states not yet written (skips, cancellations), then the run's end."""
        assert run.history is not None
        for tid, task in result.tasks.items():
            if tid not in run.options.restored and run.recorded.get(tid) != (
                task.status,
                task.error,
            ):
                await run.record(task)
        try:
            written = await run.history.finish_run(
                run.run_id, result.status, result.error, result.finished_at
            )
        except Exception:
            _log.exception("run %s: cannot record its end in the history", run.run_id)
        else:
            if written is False:
                run.ignored()

    async def _poll_cancel(self, run: _Run) -> None:
        assert run.history is not None and run.cancel is not None
        while not run.cancel.is_set():
            await asyncio.sleep(CANCEL_POLL_INTERVAL)
            try:
                if await run.history.cancel_requested(run.run_id):
                    run.cancel.set()
            except Exception:
                _log.warning("run %s: cannot read a cancel request", run.run_id, exc_info=True)

    async def _schedule(self, run: _Run) -> bool:
        """Run until nothing is ready or running; True if the run was cancelled.

        Each task's completion callback settles its successors and launches what became
        ready, so the loop does O(1) work per task instead of re-waiting on everything in
        flight; this coroutine only waits for the end (or a cancel, or a fail_fast failure).
        """
        loop = asyncio.get_running_loop()
        end: asyncio.Future[None] = loop.create_future()

        def stop() -> None:
            if not end.done():
                end.set_result(None)

        def launch() -> None:
            while run.ready and len(run.running) < self.concurrency:
                _, _, tid = heapq.heappop(run.ready)
                task = loop.create_task(self._run_task(run, tid), name=f"task:{tid}")
                run.running[task] = tid
                task.add_done_callback(on_done)
            if not run.running:
                stop()

        def on_done(task: asyncio.Task[None]) -> None:
            if run.stopping:
                return  # _cancel_all settles what it cancels
            try:
                run.finish(run.running.pop(task))
                if run.failed and run.options.fail_fast:
                    stop()
                else:
                    launch()
            except Exception as exc:  # never leave `end` pending: that would hang the run
                if not end.done():
                    end.set_exception(exc)

        cancel_wait: asyncio.Task[Literal[True]] | None = None
        if run.cancel is not None:
            cancel_wait = asyncio.create_task(run.cancel.wait())
            cancel_wait.add_done_callback(lambda _: stop())
        try:
            launch()
            await end
        finally:
            if cancel_wait is not None:
                cancel_wait.cancel()
        if run.cancel is not None and run.cancel.is_set():
            await self._cancel_all(run, "cancelled")
            run.ready.clear()
            return True
        if run.running:  # fail_fast stopped the run with tasks still in flight
            await self._cancel_all(run, "cancelled: fail_fast after a failure")
        if run.ready:
            for _, _, tid in run.ready:
                run.results[tid].status = TaskStatus.CANCELLED
                run.results[tid].error = "cancelled: fail_fast after a failure"
            run.ready.clear()
        return False

    async def _cancel_all(self, run: _Run, reason: str) -> None:
        run.stopping = True
        tasks = list(run.running)
        for task in tasks:
            task.cancel()
        if tasks:
            done, late = await asyncio.wait(tasks, timeout=CANCEL_GRACE)
            for task in done:
                _retrieve(task)
            for task in late:  # it swallows CancelledError: leave it behind, detached
                task.add_done_callback(_retrieve)
                tid = run.running[task]
                run.results[tid] = copy.copy(run.results[tid])
                _log.warning(
                    "task %s ignored its cancellation for %gs; recorded as cancelled and left "
                    "running (an async task must let CancelledError propagate)",
                    tid,
                    CANCEL_GRACE,
                    extra={
                        "mfo": {"flow": run.definition.name, "run_id": run.run_id, "task_id": tid}
                    },
                )
        for task in tasks:
            result = run.results[run.running.pop(task)]
            if result.status in (TaskStatus.RUNNING, TaskStatus.CANCELLED):
                result.status = TaskStatus.CANCELLED
                result.error = reason

    async def _run_task(self, run: _Run, tid: str) -> None:
        """Run one task with its retries; record the outcome; never raise (but cancellation)."""
        task = run.tasks[tid]
        result = run.results[tid]
        result.status = TaskStatus.RUNNING
        result.started_at = time.time()
        run.notify(result)
        try:
            if run.history is not None:
                await run.record(result)
            if task.when is not None and not _per_item(task):
                try:
                    go = self._when(run, task)
                except Exception as exc:  # a broken condition fails its task, loudly
                    self._fail(run, result, _describe(exc, task))
                    return
                if not go:
                    result.status = TaskStatus.SKIPPED
                    result.error = _CONDITION_FALSE
                    return
            if task.for_each is not None:
                await self._run_each(run, task, result)
                return
            outputs = await self._attempts(run, task, result, run.data)
            if outputs.__class__ is str:
                self._fail(run, result, outputs)
                return
            result.outputs = run.secrets.redactor.value(outputs)
            result.status = TaskStatus.SUCCEEDED
            run.data[tid] = outputs
        except asyncio.CancelledError:
            result.status = TaskStatus.CANCELLED
            result.error = result.error or "cancelled"
            raise
        finally:
            if run.results[tid] is result:  # else left behind by `_cancel_all`: nothing to say
                result.finished_at = time.time()
                run.notify(result)
                # Durable before the successors start; a cancelled task is written at the end.
                if run.history is not None and result.status is not TaskStatus.CANCELLED:
                    await run.record(result)

    async def _attempts(
        self, run: _Run, task: TaskDefinition, result: TaskResult, data: Mapping[str, Any]
    ) -> Any:
        """The outputs of the first attempt that succeeds, or the last error message (a str)."""
        attempts = task.retry.attempts if task.retry is not None else 1
        attempt = 1
        left = _Left() if task.timeout is not None else None  # only a timeout leaves threads
        while True:
            if attempt > result.attempts:
                result.attempts = attempt
            try:
                return await self._attempt(run, task, attempt, data, left)
            except asyncio.CancelledError:
                raise
            except TemplateError as exc:  # the same data will fail the same way: no retry
                return exc.message
            except Exception as exc:
                message = run.secrets.redactor.text(_describe(exc, task))
                if attempt >= attempts or task.retry is None:
                    return message
                delay = task.retry.delay(attempt)
                _log.warning(
                    "task %s attempt %d/%d failed: %s; retrying in %.2fs",
                    task.id,
                    attempt,
                    attempts,
                    message,
                    delay,
                    extra={
                        "mfo": {
                            "flow": run.definition.name,
                            "run_id": run.run_id,
                            "task_id": task.id,
                        }
                    },
                )
                await asyncio.sleep(delay)
                attempt += 1

    async def _run_each(self, run: _Run, task: TaskDefinition, result: TaskResult) -> None:
        """`for_each`: the task once per item, `max_parallel` at once, outputs in item order.

        After an item fails no new item starts; the lowest failed index names the failure. A
        `when:` that reads `item` or `index` is evaluated per item: a false one skips the item.
        """
        from mfo_client.flows._expressions import evaluate, is_true

        try:
            assert task.for_each is not None
            items = evaluate(task.for_each, run.data, where=f"tasks[{task.id}].for_each")
        except TemplateError as exc:
            self._fail(run, result, exc.message)
            return
        if not isinstance(items, list | tuple):
            kind = "none" if items is None else type(items).__name__
            message = f"tasks[{task.id}].for_each: must give a list, got {kind}"
            self._fail(run, result, message)
            return
        results: list[Any] = [None] * len(items)
        errors: dict[int, str] = {}
        pending = iter(enumerate(items))
        when = task.when if _per_item(task) else None

        async def worker() -> None:
            for index, item in pending:
                if errors:
                    return
                data = ChainMap({"item": item, "index": index}, run.data)
                if when is not None:
                    try:
                        if not is_true(when, data, where=f"tasks[{task.id}].when"):
                            continue  # a skipped item's result stays None
                    except Exception as exc:
                        errors[index] = _describe(exc, task)
                        continue
                outputs = await self._attempts(run, task, result, data)
                if isinstance(outputs, str):
                    errors[index] = outputs
                else:
                    results[index] = outputs
                    await asyncio.sleep(0)  # let the other workers start theirs

        async with asyncio.TaskGroup() as group:
            for _ in range(min(task.max_parallel, len(items))):
                group.create_task(worker())
        if errors:
            index = min(errors)
            self._fail(run, result, f"for_each item {index}: {errors[index]}")
            return
        run.data[task.id] = {"results": results}
        result.outputs = run.secrets.redactor.value(run.data[task.id])
        result.status = TaskStatus.SUCCEEDED

    def _fail(self, run: _Run, result: TaskResult, message: str) -> None:
        message = run.secrets.redactor.text(message)
        result.status = TaskStatus.FAILED
        result.error = message
        run.failed = True
        _log.error(
            "task %s failed: %s",
            result.id,
            message,
            extra={
                "mfo": {"flow": run.definition.name, "run_id": run.run_id, "task_id": result.id}
            },
        )

    def _when(self, run: _Run, task: TaskDefinition) -> bool:
        from mfo_client.flows._expressions import is_true

        assert task.when is not None
        return is_true(task.when, run.data, where=f"tasks[{task.id}].when")

    async def _call(
        self, run: _Run, task: TaskDefinition, func: TaskCallable, ctx: FlowContext
    ) -> Any:
        """Async tasks on the event loop, sync tasks in the thread pool."""
        if _is_async(func):
            try:
                return await func(ctx)
            except asyncio.CancelledError:
                ctx._cancel()
                raise
        future = self._submit(func, ctx)
        try:
            value = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self._give_up(run, task, ctx, future, "was cancelled")
            raise
        if inspect.isawaitable(value):
            value = await value
        return value

    def _submit(self, func: TaskCallable, ctx: FlowContext) -> Future[Any]:
        # In the task's context, so what the caller bound (e.g. the event and run ids that
        # log lines carry) reaches the thread too, as it reaches async tasks.
        context = contextvars.copy_context()
        return self._pool().submit(context.run, func, ctx)

    def _give_up(
        self, run: _Run, task: TaskDefinition, ctx: FlowContext, future: Future[Any], why: str
    ) -> bool:
        """Stop waiting for a sync attempt; True (and logged, once) if its thread still runs."""
        ctx._cancel()
        if future.cancel() or future.done():  # it had not started, or just ended
            return False
        _log.warning(
            "task %s attempt %d %s, but its function is sync and keeps running in its thread "
            "until it returns (Python cannot stop a thread); have it return early once "
            "ctx.cancelled is true or ctx.deadline has passed",
            task.id,
            ctx.task.attempt,
            why,
            extra={"mfo": {"flow": run.definition.name, "run_id": run.run_id, "task_id": task.id}},
        )
        return True

    async def _call_within(
        self,
        run: _Run,
        task: TaskDefinition,
        func: TaskCallable,
        ctx: FlowContext,
        timeout: float,
        left: _Left,
    ) -> Any:
        """`_call` bounded by the task's timeout, for tasks that do not stop when told to.

        A sync attempt that times out is abandoned with its thread still running; the next
        attempt first waits for that thread to end, within its own timeout, so two copies of a
        task never run at once. An async task that ignores its cancellation is waited for at
        most `CANCEL_GRACE` seconds, then left behind.
        """
        started = time.monotonic()
        previous = left.thread
        if previous is not None and not previous.done():
            waiter = asyncio.wrap_future(previous)
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
            if not done or time.monotonic() - started >= timeout:
                waiter.cancel()
                ctx._cancel()
                raise TaskError(
                    f"timed out after {timeout:g}s waiting for the thread of attempt "
                    f"{left.attempt} to end (a sync task that timed out keeps running: Python "
                    "cannot stop a thread; have the task honour ctx.deadline or ctx.cancelled)"
                )
        remaining = max(0.0, timeout - (time.monotonic() - started))
        if _is_async(func):
            return await self._async_within(run, task, func(ctx), ctx, timeout, remaining)
        future = self._submit(func, ctx)
        waiter = asyncio.wrap_future(future)
        try:
            done, _ = await asyncio.wait({waiter}, timeout=remaining)
        except asyncio.CancelledError:
            waiter.cancel()
            self._give_up(run, task, ctx, future, "was cancelled")
            raise
        if not done:
            waiter.cancel()
            if future.cancel():  # still queued
                raise TaskError(
                    f"timed out after {timeout:g}s before it could start: every thread of the "
                    "pool was busy"
                )
            if self._give_up(run, task, ctx, future, f"timed out after {timeout:g}s"):
                left.thread, left.attempt = future, ctx.task.attempt
                raise TaskError(
                    f"timed out after {timeout:g}s; its sync function still runs in its thread "
                    "(a retry waits for it to end)"
                )
            raise TaskError(f"timed out after {timeout:g}s")
        value = waiter.result()
        if inspect.isawaitable(value):
            remaining = timeout - (time.monotonic() - started)
            value = await self._async_within(run, task, value, ctx, timeout, remaining)
        return value

    async def _async_within(
        self,
        run: _Run,
        task: TaskDefinition,
        awaitable: Awaitable[Any],
        ctx: FlowContext,
        timeout: float,
        remaining: float,
    ) -> Any:
        child = asyncio.ensure_future(awaitable)
        try:
            done, _ = await asyncio.wait({child}, timeout=max(0.0, remaining))
        except asyncio.CancelledError:
            ctx._cancel()
            child.cancel()
            await asyncio.wait({child})  # its cleanup; `_cancel_all` bounds how long
            _retrieve(child)
            raise
        if done:
            return child.result()
        ctx._cancel()
        child.cancel()
        done, _ = await asyncio.wait({child}, timeout=CANCEL_GRACE)
        if done:
            _retrieve(child)
        else:
            child.add_done_callback(_retrieve)
            _log.warning(
                "task %s attempt %d timed out and then ignored its cancellation for %gs; left "
                "running (an async task must let CancelledError propagate)",
                task.id,
                ctx.task.attempt,
                CANCEL_GRACE,
                extra={
                    "mfo": {"flow": run.definition.name, "run_id": run.run_id, "task_id": task.id}
                },
            )
        raise TaskError(f"timed out after {timeout:g}s")

    async def _attempt(
        self,
        run: _Run,
        task: TaskDefinition,
        attempt: int,
        data: Mapping[str, Any],
        left: _Left | None = None,
    ) -> dict[str, Any]:
        run.secrets.activate()  # for a run started by this task (a subflow): see `_secrets`
        if task.type in CONSTRUCTS:
            func = self._construct(run, task, data)
        elif task.id in run.funcs:  # no templates: the callable of the first attempt serves
            func = run.funcs[task.id]
        else:
            config: Mapping[str, Any] = task.config
            templated = bool(config) and has_templates(config)
            if templated:
                config = render_config(
                    config, data, task_id=task.id, flow=run.definition.name, scope=run.secrets
                )
            func = self.registry.get(task.type)(config)
            if not templated:
                run.funcs[task.id] = func
        info = TaskInfo(
            id=task.id,
            name=task.label,
            type=task.type,
            attempt=attempt,
            dependencies=run.preds[task.id],
            flow=run.definition.name,
            run_id=run.run_id,
            index=data["index"] if task.for_each is not None else None,
        )
        deadline = run.deadline
        if task.timeout is not None:
            timeout = task.timeout.total_seconds()
            end = time.monotonic() + timeout
            deadline = end if deadline is None else min(deadline, end)
        ctx = FlowContext(
            data,
            info,
            self.clients,
            initial=run.initial,
            redactor=run.secrets.redactor,
            deadline=deadline,
        )
        if task.timeout is None:  # the common case skips the timeout machinery entirely
            value = await self._call(run, task, func, ctx)
        else:
            value = await self._call_within(run, task, func, ctx, timeout, left or _Left())
        outputs = dict(ctx.outputs)
        if isinstance(value, Mapping):
            outputs.update(value)
        elif value is not None:
            outputs.setdefault("result", value)
        return outputs

    def _construct(self, run: _Run, task: TaskDefinition, data: Mapping[str, Any]) -> TaskCallable:
        """A `condition` or `subflow` task as a task callable of this run."""
        if task.type == CONDITION:
            config = ConditionConfig.model_validate(task.config)

            async def condition(ctx: FlowContext) -> dict[str, Any]:
                from mfo_client.flows._expressions import evaluate

                where = f"tasks[{task.id}].config.expression"
                key, chosen = config.choose(evaluate(config.expression, data, where=where))
                for successor in run.succs[task.id]:
                    if successor not in chosen:
                        run.unchosen[successor] = task.id
                return {"branch": key}

            return condition
        subflow = SubflowConfig.model_validate(task.config)

        async def child(ctx: FlowContext) -> dict[str, Any]:
            return await self._subflow(run, task, subflow, data)

        return child

    async def _subflow(
        self, run: _Run, task: TaskDefinition, config: SubflowConfig, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        initial: Mapping[str, Any] = config.input
        if initial:
            from mfo_client.flows._templates import render_config

            rendered = render_config(
                {"input": initial}, data, task_id=task.id, flow=run.definition.name
            )
            initial = rendered["input"]
        try:
            definition = self._child(run.definition, task, config)
        except FlowDefinitionError as exc:
            raise TaskError(f"subflow cannot run: {exc.problems[0]}") from None
        index = data["index"] if task.for_each is not None else None
        child_id = child_run_id(run.run_id, task.id, index)
        options = ExecutionOptions(
            fail_fast=run.options.fail_fast,
            run_id=child_id,
            history=run.history,
            config_path=run.options.config_path,
            parent=(run.run_id, task.id),
        )
        try:
            outcome = await self.execute_flow(definition, initial, options)
        except asyncio.CancelledError:  # the child cannot record its end: do it for it
            if run.history is not None:
                await _child_cancelled(run.history, child_id)
            raise
        if outcome.status is not RunStatus.SUCCEEDED:
            failed = [f"{r.id}: {r.error}" for r in outcome.failed_tasks()]
            raise TaskError(f"subflow {outcome.status}: {'; '.join(failed) or outcome.error}")
        return {**outcome.outputs, "status": str(outcome.status)}

    def _child(
        self, parent: FlowDefinition, task: TaskDefinition, config: SubflowConfig
    ) -> FlowDefinition:
        """The child flow; a file is read again only when it changed."""
        if config.file is None:
            return child_definition(parent, task, config)
        path = child_path(parent, config.file)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            return child_definition(parent, task, config)  # raises, saying what is missing
        cached = self._children.get(path)
        if cached is None or cached[0] != mtime:
            cached = self._children[path] = (mtime, child_definition(parent, task, config))
        return cached[1]


async def _child_cancelled(history: RunHistory, run_id: str) -> None:
    from mfo_client.flows._history import mark_cancelled

    try:
        await mark_cancelled(history, run_id, "cancelled: its subflow task was cancelled")
    except Exception:
        _log.exception("run %s: cannot record its cancellation in the history", run_id)


@dataclass(slots=True)
class _Left:
    """What a task's earlier attempt left running: the thread of a sync attempt that timed
    out, which the next attempt waits for."""

    thread: Future[Any] | None = None
    attempt: int = 0


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Fetch a finished task's exception, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def hidden_keys(definition: FlowDefinition, initial: Mapping[str, Any]) -> str | None:
    """Why the run cannot start, if a task's id is a top-level key of the initial context:
    that task's outputs would replace the key in the data every later task reads."""
    clashes = [task.id for task in definition.tasks if task.id in initial] if initial else []
    if not clashes:
        return None
    where = "" if definition.source.startswith("<") else f" ({definition.source})"
    return f'flow "{definition.name}"{where}: ' + "; ".join(
        f'task "{tid}"'
        + (f" (line {definition.lines[tid]})" if tid in definition.lines else "")
        + f' has the name of the initial context\'s key "{tid}", so its outputs would hide that '
        "input from every task after it; rename the task"
        for tid in clashes
    )


def _per_item(task: TaskDefinition) -> bool:
    """Whether the task's `when:` filters its `for_each` items (it reads `item` or `index`)
    rather than gating the whole task; see `_run_each`."""
    if task.for_each is None or task.when is None:
        return False
    from mfo_client.flows._expressions import reads

    return not reads(task.when).isdisjoint(("item", "index"))


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 (a callable object's method)
    )


def _describe(exc: Exception, task: TaskDefinition) -> str:
    if isinstance(exc, TaskError):
        return exc.message
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        return f"config.{loc}: {first['msg']}" if loc else str(first["msg"])
    _log.debug("task %s raised", task.id, exc_info=exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def run_flow(
    executor: FlowExecutor,
    definition: FlowDefinition,
    initial_context: Mapping[str, Any] | None = None,
    options: ExecutionOptions | None = None,
) -> FlowResult:
    """`execute_flow` for scripts without an event loop."""
    return asyncio.run(executor.execute_flow(definition, initial_context, options))
