"""The flow runner over a real SQLite store and run history: the hard cases of running a
triggered run once (cancelled runs, runs another process runs, lost leases, removed triggers)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mfo_client.config import Config
from mfo_client.delivery import (
    FlowJob,
    IncomingEvent,
    Lease,
    SQLiteStore,
    StoreUnavailableError,
    flow_kind,
)
from mfo_client.flows import (
    FlowContext,
    FlowExecutor,
    RunState,
    SQLiteRunHistory,
    TaskRegistry,
)
from mfo_client.flows._history import mark_cancelled
from mfo_client.flows.tasks import builtin_registry
from mfo_client.triggers import load_triggers
from mfo_client.worker import FlowRunner, RunnerSettings

FLOW = """\
name: "Slow"
tasks:
  - id: "work"
    type: "counted_sleep"
    config: {seconds: "{{.input.seconds}}"}
"""
WAIT = 20.0


@dataclass
class Counter:
    started: int = 0
    running: int = 0
    most: int = 0


def registry(counter: Counter) -> TaskRegistry:
    reg = builtin_registry()

    def factory(config: dict[str, Any]) -> Any:
        async def run(ctx: FlowContext) -> dict[str, Any]:
            counter.started += 1
            counter.running += 1
            counter.most = max(counter.most, counter.running)
            try:
                await asyncio.sleep(float(ctx.get("input.seconds", 0)))
            finally:
                counter.running -= 1
            return {"slept": True}

        return run

    reg.register("counted_sleep", factory)
    return reg


class Setup:
    def __init__(self, tmp: Path, store: SQLiteStore, history: SQLiteRunHistory) -> None:
        self.tmp, self.store, self.history = tmp, store, history
        self.counter = Counter()
        self.registry = registry(self.counter)
        flow = tmp / "slow.yaml"
        flow.write_text(FLOW)
        config = Config.from_mapping(
            {
                "webhook_listener": {"secret_key": "s"},
                "triggers": [{"name": "slow", "flow": str(flow)}],
            },
            env={},
        )
        self.triggers = load_triggers(config, self.registry)

    def runner(self, store: SQLiteStore | None = None, **settings: Any) -> FlowRunner:
        return FlowRunner(
            store or self.store,
            self.triggers,
            FlowExecutor(self.registry),
            self.history,
            RunnerSettings(**{"lease_time": 5.0, "initial_backoff": 0.05, **settings}),
        )

    async def event(self, seconds: float = 0.0, trigger: str = "slow") -> str:
        run_id = uuid.uuid4().hex
        event_id = uuid.uuid4().hex
        body = {"id": event_id, "type": "x", "source": "default", "payload": {"seconds": seconds}}
        item = IncomingEvent(event_id, "default", event_id, body, b"{}", {}, time.time())
        await self.store.accept(item, [FlowJob(run_id, trigger)])
        return run_id

    async def ended(self, run_id: str) -> RunState:
        deadline = time.monotonic() + WAIT
        while True:
            record = await self.history.get_run(run_id)
            if record is not None and record.status.is_final:
                return record.status
            assert time.monotonic() < deadline, f"run {run_id}: {record}"
            await asyncio.sleep(0.02)

    async def flow_jobs(self) -> tuple[int, int, int]:
        stats = await self.store.stats([flow_kind("slow")])
        return stats.pending + stats.in_flight, stats.delivered, stats.dead


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with (
        SQLiteStore(tmp_path / "outbox.db") as store,
        SQLiteRunHistory(tmp_path / "runs.db") as history,
    ):
        yield Setup(tmp_path, store, history)


async def wait_until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_a_run_cancelled_by_hand_is_not_resumed_by_the_next_runner(setup: Setup) -> None:
    # The process running it died (kill -9), and the operator cancelled it with
    # `mfo runs cancel`, which marks it cancelled; its job is still in the store.
    run_id = await setup.event(seconds=30)
    await setup.history.start_run(run_id, "Slow", None, {"name": "Slow", "tasks": []}, {}, 0.0)
    await mark_cancelled(setup.history, run_id, "cancelled while not running")

    runner = setup.runner()
    runner.start()
    try:
        await wait_until(lambda: _jobs_done(setup), "the job was not settled")
    finally:
        await runner.stop()
    assert setup.counter.started == 0  # not resumed
    assert await setup.ended(run_id) is RunState.CANCELLED


async def test_a_run_paused_at_shutdown_resumes_with_the_next_runner(setup: Setup) -> None:
    run_id = await setup.event(seconds=0.5)
    first = setup.runner()
    first.start()
    await wait_until(lambda: _true(setup.counter.running == 1), "the run did not start")
    await first.stop(grace=0.0)
    second = setup.runner()
    second.start()
    try:
        await wait_until(lambda: _jobs_done(setup), "the job was not settled")
    finally:
        await second.stop()
    record = await setup.history.get_run(run_id)
    assert record is not None and record.resumes == 1
    assert record.status is RunState.SUCCEEDED


async def test_a_run_another_live_process_runs_is_left_to_it(setup: Setup) -> None:
    run_id = await setup.event()
    record_owner = subprocess.Popen(["sleep", "30"])  # stands in for `mfo runs resume`
    try:
        await setup.history.start_run(
            run_id,
            "Slow",
            None,
            setup.triggers.get("slow").flow.definition.model_dump(mode="json"),  # type: ignore[union-attr]
            {"input": {"seconds": 0}},
            time.time(),
        )
        await _set_owner(
            setup.tmp / "runs.db", run_id, f"{socket.gethostname()}:{record_owner.pid}"
        )
        runner = setup.runner()
        runner.start()
        await asyncio.sleep(0.5)
        await runner.stop()
        assert setup.counter.started == 0  # left alone while that process lives
        pending, done, dead = await setup.flow_jobs()
        assert (pending, done, dead) == (1, 0, 0)  # handed back for later
    finally:
        record_owner.kill()
        record_owner.wait()


async def _set_owner(db: Path, run_id: str, owner: str) -> None:
    import sqlite3

    def write() -> None:
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE runs SET owner = ? WHERE id = ?", (owner, run_id))

    await asyncio.to_thread(write)


class FailingRenewals(SQLiteStore):
    """A store whose lease renewals fail (as when Redis or the disk is briefly unavailable)."""

    async def renew(self, lease: Lease, lease_for: float) -> bool:
        raise StoreUnavailableError("renewals fail in this test")


async def test_a_run_whose_lease_cannot_be_kept_never_runs_twice_at_once(tmp_path: Path) -> None:
    async with (
        FailingRenewals(tmp_path / "outbox.db") as store,
        SQLiteRunHistory(tmp_path / "runs.db") as history,
    ):
        setup = Setup(tmp_path, store, history)
        run_id = await setup.event(seconds=1.0)
        runner = setup.runner(lease_time=0.6)
        runner.start()
        try:
            await wait_until(lambda: _true(setup.counter.started >= 2), "no second attempt")
        finally:
            await runner.stop(grace=0.0)
        record = await history.get_run(run_id)
    # The run was stopped before its lease ran out, and taken up again (resumed under the same
    # run id): never two at once.
    assert setup.counter.most == 1
    assert record is not None and record.resumes >= 1


async def test_jobs_of_a_trigger_no_longer_configured_go_to_the_dead_letters(
    setup: Setup,
) -> None:
    await setup.event(trigger="renamed-away")
    runner = setup.runner()
    runner.start()
    try:
        await wait_until(
            lambda: _dead_count(setup.store, "renamed-away"), "the orphan was not dead-lettered"
        )
    finally:
        await runner.stop()
    (dead,) = await setup.store.list_dead()
    assert dead.kind == flow_kind("renamed-away")
    assert 'trigger "renamed-away" is not configured any more' in dead.last_error


async def test_a_run_on_record_without_tasks_gets_its_input_made_again(setup: Setup) -> None:
    # A crash right after the run's start was written: the record has no task yet.
    run_id = await setup.event(seconds=0)
    await setup.history.start_run(run_id, "Slow", None, {"name": "Slow", "tasks": []}, {}, 0.0)
    runner = setup.runner()
    runner.start()
    try:
        assert await setup.ended(run_id) is RunState.SUCCEEDED
    finally:
        await runner.stop()
    record = await setup.history.get_run(run_id)
    assert record is not None and record.initial_context["input"] == {"seconds": 0}
    assert setup.counter.started == 1


async def _true(value: bool) -> bool:
    return value


async def _jobs_done(setup: Setup) -> bool:
    pending, done, _ = await setup.flow_jobs()
    return pending == 0 and done == 1


async def _dead_count(store: SQLiteStore, trigger: str) -> bool:
    return len(await store.list_dead(kinds=[flow_kind(trigger)])) == 1


class SlowLeases(SQLiteStore):
    """A store whose lease answers late (as a busy Redis does), to stop a runner meanwhile."""

    entered: asyncio.Event
    proceed: asyncio.Event

    async def lease(
        self, owner: str, limit: int, lease_for: float, kinds: Sequence[str] = ("forward",)
    ) -> list[Lease]:
        leases = await super().lease(owner, limit, lease_for, kinds)
        self.entered.set()
        await self.proceed.wait()
        return leases


async def test_a_runner_stopped_while_leasing_hands_the_jobs_back(tmp_path: Path) -> None:
    async with (
        SlowLeases(tmp_path / "outbox.db") as store,
        SQLiteRunHistory(tmp_path / "runs.db") as history,
    ):
        store.entered, store.proceed = asyncio.Event(), asyncio.Event()
        setup = Setup(tmp_path, store, history)
        await setup.event()
        runner = setup.runner()
        runner.start()
        await asyncio.wait_for(store.entered.wait(), WAIT)
        stopping = asyncio.create_task(runner.stop())
        await asyncio.sleep(0.05)
        store.proceed.set()  # the store answers only after the stop began
        await stopping
        stats = await store.stats([flow_kind("slow")])
    assert (stats.pending, stats.in_flight) == (1, 0)  # given back, not held for the lease time
    assert setup.counter.started == 0
