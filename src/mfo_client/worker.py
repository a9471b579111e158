"""Flow runners: run the flow jobs that triggers put in the store, each to the end, once.

A job's id is its run id, so the run history tells a runner what a job already did when it is
leased again after a crash: nothing (start the run), part of it (resume it under the same id:
tasks that succeeded are not run again, and the MFO calls of the task caught mid-way reuse their
idempotency keys), or all of it (settle the job). A job is completed only after its run reached
an end, whatever the run's status: a failed run is in the history, to be resumed or retried from
the CLI; the job is retried only when the run could not even be started or recorded (e.g. the
history is unavailable), and dead-lettered after `max_attempts` such failures.

Capacity: at most `max_runs` runs at once, and at most a trigger's `concurrency` runs of that
trigger. Each trigger is its own queue in the store, and the runner leases only from triggers
with a free slot, so a burst on one trigger never holds the slots of the others. The lease of
a running job is renewed every third of `lease_time`, so a long run keeps it.

Stopping: runs in progress get `grace` seconds, then are cancelled and their jobs handed back;
a run cancelled that way is resumed by whoever leases the job next. A run cancelled on request
(`mfo runs cancel`) ends there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from mfo_client.delivery import EventStore, Lease, flow_kind, trigger_of
from mfo_client.flows import (
    ExecutionOptions,
    FlowError,
    FlowExecutor,
    FlowResult,
    RunHistory,
    RunRecord,
    RunState,
    RunStatus,
    TaskStatus,
    owner_alive,
    resume_run,
    this_process,
)
from mfo_client.observability import Metrics
from mfo_client.triggers import Trigger, Triggers

__all__ = ["FlowRunner", "RunOutcome", "RunnerSettings", "wait_for_run"]

_log = logging.getLogger("mfo_client.worker")
_POLL = 0.25
"""Seconds between two looks at the run history while waiting for a run another process runs."""


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    max_runs: int = 16
    """Runs at once in this runner, over all triggers."""
    lease_time: float = 60.0
    max_attempts: int = 5
    """Tries to start and record a run before its job is dead-lettered."""
    initial_backoff: float = 1.0
    max_backoff: float = 300.0
    grace: float = 10.0
    """Seconds runs in progress may take to finish when the runner stops."""
    config_path: str | None = None
    """The config file the runs use, recorded so `mfo runs resume` can use it again."""

    def retry_delay(self, attempts: int) -> float:
        base: float = min(self.max_backoff, self.initial_backoff * 2.0 ** min(attempts - 1, 32))
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 (jitter)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended, as a webhook caller waiting for it is told."""

    run_id: str
    status: str
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of_result(cls, result: FlowResult) -> RunOutcome:
        return cls(result.run_id, result.status.value, result.outputs, result.error)

    @classmethod
    def of_record(cls, record: RunRecord) -> RunOutcome:
        outputs = {
            t.task_id: dict(t.outputs) for t in record.tasks if t.status is TaskStatus.SUCCEEDED
        }
        return cls(record.run_id, record.status.value, outputs, record.error)


class _Stopping(Exception):
    """The runner stops: hand the job back, to be resumed."""


class _Busy(Exception):
    """Another live process runs this run: hand the job back for later."""


class _Held:
    """A job this runner runs: its current lease (replaced if the job is leased again while it
    runs) and the event that cancels the run."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.cancel = asyncio.Event()
        self.lost = False
        """The lease could not be kept: the run was stopped here, for whoever leases the job
        next to resume."""


class FlowRunner:
    """Leases flow jobs from `store` and runs them with `executor`, recording to `history`."""

    def __init__(
        self,
        store: EventStore,
        triggers: Triggers,
        executor: FlowExecutor,
        history: RunHistory,
        settings: RunnerSettings | None = None,
        *,
        owner: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.triggers = triggers
        self.executor = executor
        self.history = history
        self.settings = settings or RunnerSettings()
        self.owner = owner or f"runner-{uuid.uuid4().hex[:12]}"
        self.metrics = metrics
        self._running: dict[str, int] = {t.name: 0 for t in triggers}
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[str, _Held] = {}
        self._waiters: dict[str, list[asyncio.Future[RunOutcome]]] = {}
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self.finished = 0

    def notify(self) -> None:
        """New jobs were stored: look for work now. Call from the event loop only."""
        self._wakeup.set()

    def start(self) -> None:
        if len(self.triggers):
            self._loop_task = asyncio.create_task(self._loop(), name=self.owner)

    async def stop(self, grace: float | None = None) -> None:
        """Stop leasing; give runs in progress `grace` seconds, then hand them back."""
        self._stopping.set()
        self._wakeup.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if not self._tasks:
            return
        grace = self.settings.grace if grace is None else grace
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for job in self._held.values():
            job.cancel.set()
        if pending:
            await asyncio.wait(pending)

    # -- waiting for a run (webhook `respond: outputs`) -----------------------------------

    async def wait_for(self, run_id: str, timeout: float) -> RunOutcome | None:
        """How `run_id` ended, waiting up to `timeout` seconds; None if it has not ended.

        A run of this process wakes the waiter as it ends; one that another worker runs is
        seen in the run history (see `wait_for_run`).
        """
        future: asyncio.Future[RunOutcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(run_id, []).append(future)
        try:
            return await wait_for_run(self.history, run_id, timeout, future)
        finally:
            waiters = self._waiters.get(run_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(run_id, None)

    def _resolve(self, outcome: RunOutcome) -> None:
        for future in self._waiters.pop(outcome.run_id, []):
            if not future.done():
                future.set_result(outcome)

    # -- the lease loop ---------------------------------------------------------------------

    def _free_kinds(self) -> list[tuple[str, int]]:
        free_total = self.settings.max_runs - len(self._tasks)
        kinds = []
        for trigger in self.triggers:
            free = min(trigger.config.concurrency - self._running[trigger.name], free_total)
            if free > 0:
                kinds.append((flow_kind(trigger.name), free))
        random.shuffle(kinds)  # no trigger always first in line
        return kinds

    async def _loop(self) -> None:
        try:
            await self._dead_letter_orphans()
        except Exception:
            _log.exception("cannot look for the jobs of triggers no longer configured")
        while not self._stopping.is_set():
            try:
                self._wakeup.clear()  # before looking, so a notify() meanwhile is not lost
                leased = 0
                for kind, free in self._free_kinds():
                    room = min(free, self.settings.max_runs - len(self._tasks))
                    if room <= 0:
                        break
                    for lease in await self._lease(room, kind):
                        self._launch(lease)
                        leased += 1
                if not leased:
                    await self._idle()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup must not stop the runner
                _log.exception("flow runner failed to lease; trying again in 1s")
                await self._sleep(1.0)

    async def _lease(self, limit: int, kind: str) -> list[Lease]:
        """Lease jobs of `kind`; if stopped meanwhile, hand back what the store had leased (on
        a shared store nothing else would release them before their lease time)."""
        call = asyncio.ensure_future(
            self.store.lease(self.owner, limit, self.settings.lease_time, [kind])
        )
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                for lease in await call:
                    await self.store.release(lease)
            raise

    async def _idle(self) -> None:
        kinds = [kind for kind, _ in self._free_kinds()]
        due = await self.store.next_due_in(kinds) if kinds else None
        idle = self.store.idle_poll
        wait = idle if due is None else min(max(due, 0.0), idle)
        if wait > 0:
            await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    def _launch(self, lease: Lease) -> None:
        held = self._held.get(lease.id)
        if held is not None:
            # Our own job, leased again: its lease ran out while it ran (renewals failed).
            # Adopt the new lease instead of running the flow a second time.
            held.lease = lease
            _log.warning("run %s: its lease expired while running; renewed it here", lease.id)
            return
        name = trigger_of(lease.kind) or ""
        if name in self._running:
            self._running[name] += 1
        job = _Held(lease)
        self._held[lease.id] = job
        task = asyncio.create_task(self._job(job, name), name=f"run-{lease.id}")
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._held.get(lease.id) is job:
                del self._held[lease.id]
            if name in self._running:
                self._running[name] -= 1
            self._wakeup.set()  # a slot is free

        task.add_done_callback(done)

    async def _dead_letter_orphans(self) -> None:
        """Jobs of triggers no longer configured would wait forever: dead-letter them, where
        `mfo dlq` shows them (and replays them once the trigger is back)."""
        configured = {flow_kind(t.name) for t in self.triggers}
        orphans = [k for k in await self.store.kinds() if trigger_of(k) and k not in configured]
        for kind in orphans:
            moved = 0
            while leases := await self.store.lease(
                self.owner, 100, self.settings.lease_time, [kind]
            ):
                for lease in leases:
                    await self.store.dead_letter(
                        lease,
                        f'trigger "{trigger_of(kind)}" is not configured any more; add it '
                        "back and replay this job (mfo dlq replay), or purge it",
                    )
                    moved += 1
            if moved:
                _log.error(
                    "%d flow jobs of trigger %s, which is not configured any more, moved to "
                    "the dead-letter queue",
                    moved,
                    trigger_of(kind),
                )

    # -- one job ------------------------------------------------------------------------------

    async def _job(self, job: _Held, name: str) -> None:
        trigger = self.triggers.get(name)
        run_id = job.lease.id
        with structlog.contextvars.bound_contextvars(
            event_id=job.lease.event_id, run_id=run_id, trigger=name
        ):
            if trigger is None:  # leased by kind, so only if the triggers changed meanwhile
                await self.store.release(job.lease, self.settings.lease_time)
                return
            renewer = asyncio.create_task(self._renew(job))
            try:
                outcome = await self._run(job, trigger)
            except _Stopping:
                await self.store.release(job.lease)  # a no-op if the lease is lost
                _log.info("run %s handed back; it resumes where its job is leased next", run_id)
                return
            except _Busy as exc:
                await self.store.release(job.lease, self.settings.lease_time)
                _log.warning("run %s: %s; trying again later", run_id, exc)
                return
            except Exception as exc:
                await self._failed(job.lease, exc)
                return
            finally:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
            await self.store.complete(job.lease)
            self.finished += 1
            self._resolve(outcome)

    async def _renew(self, job: _Held) -> None:
        """Keep the lease while the run goes on. If it cannot be renewed for two thirds of the
        lease time, stop the run here: another worker may take the job over soon."""
        lease_time = self.settings.lease_time
        every = lease_time / 3
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(every)
            try:
                held = await self.store.renew(job.lease, lease_time)
            except Exception:
                _log.exception("cannot renew the lease of run %s", job.lease.id)
                if time.monotonic() - renewed > lease_time * 2 / 3:
                    _log.error("run %s: lease about to expire; stopping the run", job.lease.id)
                    job.lost = True
                    job.cancel.set()
                    return
                continue
            if not held:
                _log.error("run %s: another worker took the job over; stopping here", job.lease.id)
                job.lost = True
                job.cancel.set()
                return
            renewed = time.monotonic()

    async def _run(self, job: _Held, trigger: Trigger) -> RunOutcome:
        lease = job.lease
        record = await self.history.get_run(lease.id)
        if record is not None and record.status.is_final and not record.paused:
            return RunOutcome.of_record(record)  # it ended before the job could be settled
        if record is not None and record.status is RunState.RUNNING:
            alive = owner_alive(record.owner)
            if record.owner != this_process() and alive is True:
                # e.g. `mfo runs resume` by hand: that process runs it; do not run it twice.
                raise _Busy(f"process {record.owner} is running it")
        options = ExecutionOptions(
            run_id=lease.id,
            history=self.history,
            cancel=job.cancel,
            trigger=trigger.name,
            event_id=lease.event_id,
            observer=self._observer(trigger.name),
            config_path=self.settings.config_path,
        )
        definition = trigger.flow.definition
        if self.metrics is not None:
            self.metrics.flow_run_started(trigger.name)
        started = time.monotonic()
        status: str | None = None
        try:
            if record is not None and record.tasks:
                _log.info("resuming run %s of trigger %s", lease.id, trigger.name)
                result = await resume_run(
                    self.executor,
                    self.history,
                    lease.id,
                    definition=definition,
                    options=options,
                    force=True,
                )
            else:
                # New, or on record without any task started (a crash right after its start,
                # or an event that does not fit the mapping): the input is made again.
                try:
                    initial = trigger.initial_context(lease.event)
                except FlowError as exc:
                    status = RunStatus.FAILED.value
                    return await self._unmappable(lease, trigger, str(exc))
                result = await self.executor.execute_flow(definition, initial, options)
            if result.status is RunStatus.CANCELLED and (self._stopping.is_set() or job.lost):
                raise _Stopping  # not a cancel on request: the run resumes where leased next
            await self._ensure_recorded(result)
            status = result.status.value
        finally:
            if self.metrics is not None:
                seconds = time.monotonic() - started
                self.metrics.flow_run_finished(trigger.name, status, seconds)
        log = _log.info if result.succeeded else _log.warning
        log(
            "run %s of trigger %s %s%s",
            lease.id,
            trigger.name,
            result.status.value,
            f": {result.error}" if result.error else "",
        )
        return RunOutcome.of_result(result)

    async def _ensure_recorded(self, result: FlowResult) -> None:
        """The executor logs a failed write of the run's end and goes on; the job must not be
        settled before the end is on record, or the run would look unfinished for ever."""
        record = await self.history.get_run(result.run_id)
        if record is None or not record.status.is_final:
            await self.history.finish_run(
                result.run_id, result.status, result.error, result.finished_at
            )

    def _observer(self, trigger: str) -> Any:
        metrics = self.metrics
        if metrics is None:
            return None

        def observe(result: Any) -> None:
            if result.status.is_final and result.duration is not None:
                metrics.flow_task(trigger, result.id, result.status.value, result.duration)

        return observe

    async def _unmappable(self, lease: Lease, trigger: Trigger, error: str) -> RunOutcome:
        """The event does not fit the trigger's input mapping: a failed run, on record."""
        now = time.time()
        definition = trigger.flow.definition
        await self.history.start_run(
            lease.id,
            definition.name,
            trigger.flow_file,
            definition.model_dump(mode="json"),
            {"event": lease.event},
            now,
            trigger=trigger.name,
            event_id=lease.event_id,
        )
        message = f"the event does not fit the trigger's input mapping: {error}"
        await self.history.finish_run(lease.id, RunStatus.FAILED, message, time.time())
        _log.warning("run %s of trigger %s failed: %s", lease.id, trigger.name, message)
        return RunOutcome(lease.id, RunStatus.FAILED.value, {}, message)

    async def _failed(self, lease: Lease, exc: Exception) -> None:
        attempt = lease.attempts + 1
        error = f"{type(exc).__name__}: {exc}"
        _log.exception("flow job %s could not be run (attempt %d)", lease.id, attempt)
        if attempt >= self.settings.max_attempts:
            await self.store.dead_letter(lease, f"gave up after {attempt} attempts: {error}")
            return
        await self.store.retry_later(lease, error, self.settings.retry_delay(attempt))


async def wait_for_run(
    history: RunHistory,
    run_id: str,
    timeout: float,
    ended: asyncio.Future[RunOutcome] | None = None,
) -> RunOutcome | None:
    """How `run_id` ended, waiting up to `timeout` seconds; None if it has not ended by then.

    The run history is looked at every quarter second, so this works whichever process runs
    the run (a listener waiting for a worker's run, on a shared store); `ended`, resolved by a
    runner of this process, ends the wait sooner.
    """
    deadline = time.monotonic() + timeout
    while True:
        record = await history.get_run(run_id)
        if record is not None and record.status.is_final and not record.paused:
            return RunOutcome.of_record(record)
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if ended is None:
            await asyncio.sleep(min(left, _POLL))
            continue
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(ended), min(left, _POLL))
