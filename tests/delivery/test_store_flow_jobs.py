"""Flow jobs: stored with their event, deduped per trigger, leased by kind, renewed, dead-lettered
and replayed, and they keep their event from being pruned.

Tests taking `kit` run on both backends and look only through the store's interface (another
store on the same backend stands for another process); the one that reads SQLite's tables is
about its own storage.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from mfo_client.delivery import (
    FORWARD,
    Accepted,
    DeadLetter,
    EventStore,
    FlowJob,
    IncomingEvent,
    JobAccepted,
    OutboxStats,
    SQLiteStore,
    StoreError,
    StoreFullError,
    flow_kind,
)
from tests._stores import T0, Clock, StoreKit

DAY = 86400.0
DEPLOY = flow_kind("deploy")
NOTIFY = flow_kind("notify")


def incoming(id: str, *, source: str = "github") -> IncomingEvent:
    return IncomingEvent(
        id=id,
        source=source,
        delivery_id=f"delivery-{source}-{id}",
        event={"type": "push", "data": {"id": id}},
        raw_body=f"raw {id}".encode(),
        headers={},
        received_at=T0 - 1,
    )


def rows(path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Read through a connection of its own: it sees committed data only."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


async def jobs_of(store: EventStore) -> list[tuple[str, str, str]]:
    """(id, kind, event id) of every job waiting, by kind then age; leases them for an hour."""
    jobs = []
    for kind in await store.kinds():
        jobs += [(j.id, j.kind, j.event_id) for j in await store.lease("peek", 1000, 3600, [kind])]
    return jobs


# accept


async def test_an_event_and_its_flow_jobs_are_committed_together(kit: StoreKit) -> None:
    async with kit.store() as store:
        accepted = await store.accept(
            incoming("e1"), [FlowJob("run-1", "deploy"), FlowJob("run-2", "notify", "k")]
        )
        # Still open: another connection sees all of it, so it was committed.
        async with kit.store(role="admin") as other:
            stored = await jobs_of(other)
    assert accepted == Accepted(
        id="e1",
        duplicate=False,
        jobs=(JobAccepted("deploy", "run-1", False), JobAccepted("notify", "run-2", False)),
    )
    assert stored == [("run-1", DEPLOY, "e1"), ("run-2", NOTIFY, "e1"), ("e1", FORWARD, "e1")]


async def test_the_sqlite_tables_hold_an_event_and_its_flow_jobs(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path) as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy"), FlowJob("run-2", "notify")])
        stored = rows(path, "SELECT id, kind, event_id FROM work ORDER BY seq")
    assert stored == [("e1", FORWARD, "e1"), ("run-1", DEPLOY, "e1"), ("run-2", NOTIFY, "e1")]


async def test_a_full_outbox_stores_neither_the_event_nor_its_jobs(kit: StoreKit) -> None:
    async with kit.store(max_pending=3) as store:
        # One event and its two runs fill the outbox: flow jobs count against the limit.
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy"), FlowJob("run-2", "notify")])
        with pytest.raises(StoreFullError, match="max_pending"):
            await store.accept(incoming("e2"), [FlowJob("run-3", "deploy")])
        assert (await store.stats(kinds=None)).pending == 3
        assert await store.kinds() == [DEPLOY, NOTIFY, FORWARD]

        # A finished flow run makes room again; nothing of the refused event was kept.
        [run] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
        assert run.id == "run-1"
        await store.complete(run)
        accepted = await store.accept(incoming("e2"), [FlowJob("run-3", "deploy")])
    assert accepted == Accepted("e2", False, (JobAccepted("deploy", "run-3", False),))


async def test_a_failing_job_takes_its_event_and_the_other_jobs_with_it(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
        # The second job's id is taken (on SQLite, after the event and the first job were
        # written; Redis checks before writing).
        with pytest.raises(StoreError, match=r"'run-1'.*id of its own"):
            await store.accept(
                incoming("e2"), [FlowJob("run-2", "notify"), FlowJob("run-1", "deploy")]
            )
        with pytest.raises(StoreError, match=r"'e3'.*id of its own"):
            await store.accept(incoming("e3"), [FlowJob("e3", "deploy")])
        assert (await store.stats(kinds=None)).pending == 2
        assert await store.kinds() == [DEPLOY, FORWARD]
        # Not a storage failure: the store stays healthy and takes the event with fresh ids.
        assert await store.healthy()
        accepted = await store.accept(incoming("e2"), [FlowJob("run-2", "notify")])
    assert accepted == Accepted("e2", False, (JobAccepted("notify", "run-2", False),))


async def test_a_repeated_event_stores_no_jobs(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
        again = await store.accept(incoming("e1"), [FlowJob("run-2", "deploy")])
        stored = await jobs_of(store)
    assert again == Accepted("e1", duplicate=True, jobs=())
    assert [id for id, _, _ in stored] == ["run-1", "e1"]


async def test_flow_jobs_of_a_renamed_event_refer_to_its_stored_id(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1", source="github"))
        accepted = await store.accept(incoming("e1", source="gitlab"), [FlowJob("run-1", "deploy")])
        [run] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
    assert accepted.id == "gitlab:e1"
    assert (run.id, run.event_id, run.source) == ("run-1", "gitlab:e1", "gitlab")


async def test_an_event_whose_id_a_flow_job_holds_is_renamed(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
        accepted = await store.accept(incoming("run-1"))
        forwards = await store.lease("w", 10, 30)
        [run] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
    assert accepted == Accepted("github:run-1", duplicate=False)
    assert [lease.id for lease in forwards] == ["e1", "github:run-1"]
    assert run.event_id == "e1"


# dedupe


async def test_a_deduped_job_answers_the_earlier_run(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy", "main@abc")])
        second = await store.accept(
            incoming("e2"),
            [
                FlowJob("run-2", "deploy", "main@abc"),
                FlowJob("run-3", "notify", "main@abc"),  # another trigger: its own keys
                FlowJob("run-4", "deploy", "main@def"),
                FlowJob("run-5", "deploy", "main@def"),  # a repeat within the same event
                FlowJob("run-6", "deploy"),  # no key: never deduped
            ],
        )
        stored = await jobs_of(store)
    assert second.jobs == (
        JobAccepted("deploy", "run-1", True),
        JobAccepted("notify", "run-3", False),
        JobAccepted("deploy", "run-4", False),
        JobAccepted("deploy", "run-4", True),
        JobAccepted("deploy", "run-6", False),
    )
    assert [id for id, _, event in stored if event == "e2"] == ["run-4", "run-6", "run-3", "e2"]


async def test_dedupe_outlives_a_done_or_dead_job_for_the_retention(kit: StoreKit) -> None:
    async with kit.store(retention=7 * DAY) as store:
        await store.accept(incoming("e1"), [FlowJob("done", "deploy", "a")])
        await store.accept(incoming("e2"), [FlowJob("dead", "deploy", "b")])
        for forward in await store.lease("w", 2, 30):
            await store.complete(forward)
        done, dead = await store.lease("runner", 2, 30, kinds=[DEPLOY])
        await store.complete(done)
        await store.dead_letter(dead, "the flow failed")

        await kit.pass_time(6 * DAY)
        assert await store.prune() == 0
        again = await store.accept(
            incoming("e3"), [FlowJob("x1", "deploy", "a"), FlowJob("x2", "deploy", "b")]
        )
        assert again.jobs == (
            JobAccepted("deploy", "done", True),
            JobAccepted("deploy", "dead", True),
        )

        # Past the retention the keys no longer count, pruned or not; the pruned run is gone
        # with its event, the dead one stays in the dead letters.
        await kit.pass_time(2 * DAY)
        later = await store.accept(incoming("e4"), [FlowJob("y1", "deploy", "a")])
        assert await store.prune() == 1  # e1 with its run; e2 stays for its dead run
        fresh = await store.accept(incoming("e5"), [FlowJob("z1", "deploy", "b")])
        dead_ids = [letter.id for letter in await store.list_dead()]
    assert later.jobs == (JobAccepted("deploy", "y1", False),)
    assert fresh.jobs == (JobAccepted("deploy", "z1", False),)
    assert dead_ids == ["dead"]


async def test_a_key_counts_while_its_job_is_pending_however_long(kit: StoreKit) -> None:
    async with kit.store(retention=DAY) as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy", "k")])
        await kit.pass_time(3 * DAY)
        await store.prune()
        again = await store.accept(incoming("e2"), [FlowJob("run-2", "deploy", "k")])
        # Its run still pending after a replay, the key counts again.
        [run] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
        await store.dead_letter(run, "failed")
        await kit.pass_time(3 * DAY)
        assert await store.replay(["run-1"]) == 1
        await kit.pass_time(3 * DAY)
        await store.prune()
        replayed = await store.accept(incoming("e3"), [FlowJob("run-3", "deploy", "k")])
    assert again.jobs == (JobAccepted("deploy", "run-1", True),)
    assert replayed.jobs == (JobAccepted("deploy", "run-1", True),)


async def test_prune_forgets_keys_that_no_longer_count(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path, clock=clock, retention=DAY) as store:
        await store.accept(incoming("e1"), [FlowJob("old", "deploy", "k1")])
        [run] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
        await store.complete(run)
        clock.now += 2 * DAY
        await store.accept(incoming("e2"), [FlowJob("new", "deploy", "k2")])
        await store.prune()
        keys = rows(path, "SELECT key, job_id FROM job_dedupe")
    assert keys == [("k2", "new")]


# leases


async def test_each_kind_is_leased_on_its_own(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
        await kit.pass_time(1)
        await store.accept(incoming("e2"), [FlowJob("run-2", "notify"), FlowJob("run-3", "deploy")])
        forwards = await store.lease("forwarder", 10, 30)
        notify = await store.lease("runner", 10, 30, kinds=[NOTIFY])
        # Across kinds, the longest waiting first, and no more than asked.
        flows = await store.lease("runner", 1, 30, kinds=[NOTIFY, DEPLOY])
        rest = await store.lease("runner", 10, 30, kinds=[DEPLOY, NOTIFY])
        none = await store.lease("runner", 10, 30, kinds=[])
        with pytest.raises(TypeError, match=r"\['forward'\]"):
            await store.lease("runner", 10, 30, kinds=FORWARD)
    assert [(lease.id, lease.kind, lease.event_id) for lease in forwards] == [
        ("e1", FORWARD, "e1"),
        ("e2", FORWARD, "e2"),
    ]
    assert [(lease.id, lease.kind) for lease in notify] == [("run-2", NOTIFY)]
    assert [(lease.id, lease.event_id) for lease in flows] == [("run-1", "e1")]
    assert [lease.id for lease in rest] == ["run-3"]
    assert none == []
    # A flow lease carries the event it is about.
    assert notify[0].event == {"type": "push", "data": {"id": "e2"}}
    assert (notify[0].source, notify[0].attempts) == ("github", 0)


async def test_renew_keeps_a_lease_past_its_first_expiry(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
        [run] = await store.lease("runner-1", 1, 30, kinds=[DEPLOY])
        await kit.pass_time(20)
        assert await store.renew(run, 30)
        await kit.pass_time(20)  # past the first expiry, within the renewed one
        assert await store.lease("runner-2", 1, 30, kinds=[DEPLOY]) == []
        due = await store.next_due_in(kinds=[DEPLOY])  # on Redis by the server's clock
        assert due == 10 if kit.backend == "sqlite" else due is not None and 0 < due <= 10
        await store.complete(run)
        stats = await store.stats(kinds=[DEPLOY])
    assert (stats.delivered, stats.pending, stats.in_flight) == (1, 0, 0)


async def test_renew_fails_once_another_worker_took_the_job(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
        [stalled] = await store.lease("runner-1", 1, 30, kinds=[DEPLOY])
        await kit.pass_time(31)
        [taken] = await store.lease("runner-2", 1, 30, kinds=[DEPLOY])
        assert not await store.renew(stalled, 30)
        await store.complete(stalled)  # does nothing: the token is stale
        assert (await store.stats(kinds=[DEPLOY])).in_flight == 1
        assert await store.renew(taken, 30)
        await store.complete(taken)
        assert not await store.renew(taken, 30)  # settled: nothing to renew
    assert (taken.id, taken.attempts) == ("run-1", 0)


# stats


async def test_stats_and_next_due_per_kind(kit: StoreKit) -> None:
    async with kit.store() as store:
        assert await store.kinds() == []
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy"), FlowJob("run-2", "notify")])
        await kit.pass_time(10)
        await store.accept(incoming("e2"), [FlowJob("run-3", "deploy")])
        [forward] = await store.lease("w", 1, 30)
        await store.complete(forward)
        [notify] = await store.lease("runner", 1, 30, kinds=[NOTIFY])
        await store.dead_letter(notify, "boom")
        [deploy] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
        await store.retry_later(deploy, "busy", delay=60)

        forward_stats = await store.stats()
        deploy_stats = await store.stats(kinds=[DEPLOY])
        notify_stats = await store.stats(kinds=[NOTIFY])
        flows = await store.stats(kinds=[DEPLOY, NOTIFY])
        everything = await store.stats(kinds=None)
        kinds = await store.kinds()
        due = (await store.next_due_in(), await store.next_due_in(kinds=[DEPLOY]))
        assert await store.next_due_in(kinds=[NOTIFY]) is None
    assert forward_stats == OutboxStats(1, 0, 1, 0, oldest_pending_age=0.0)
    assert deploy_stats == OutboxStats(2, 0, 0, 0, oldest_pending_age=10.0)
    assert notify_stats == OutboxStats(0, 0, 0, 1, oldest_pending_age=None)
    assert flows == OutboxStats(2, 0, 0, 1, oldest_pending_age=10.0)
    assert everything == OutboxStats(3, 0, 1, 1, oldest_pending_age=10.0)
    assert kinds == [DEPLOY, NOTIFY, FORWARD]
    assert due == (0.0, 0.0)


# dead letters


async def test_a_dead_flow_job_is_listed_shown_and_replayed_as_itself(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
        [forward] = await store.lease("w", 1, 30)
        await store.dead_letter(forward, "422")
        [run] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
        await store.retry_later(run, "step failed", delay=0)
        [run] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
        await kit.pass_time(5)
        await store.dead_letter(run, "step failed again")

        letter = await store.get_dead("run-1")
        flows = await store.list_dead(kinds=[DEPLOY])
        forwards = await store.list_dead(kinds=[FORWARD])
        every = await store.list_dead()
        assert await store.replay(["run-1"]) == 1
        assert await store.lease("w", 10, 30) == []  # the forward stays dead
        [again] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
    assert letter == DeadLetter(
        id="run-1",
        source="github",
        event={"type": "push", "data": {"id": "e1"}},
        attempts=2,
        last_error="step failed again",
        failed_at=T0 + 5,
        received_at=T0 - 1,
        raw_body=b"raw e1",
        kind=DEPLOY,
        event_id="e1",
    )
    assert [d.id for d in flows] == ["run-1"]
    assert [(d.id, d.kind, d.event_id) for d in forwards] == [("e1", FORWARD, "e1")]
    assert [d.id for d in every] == ["e1", "run-1"]
    assert (again.id, again.kind, again.event_id, again.attempts) == ("run-1", DEPLOY, "e1", 0)


async def test_purging_a_dead_flow_job_keeps_an_event_still_needed(kit: StoreKit) -> None:
    async with kit.store() as store:
        await store.accept(incoming("e1"), [FlowJob("run-1", "deploy")])
        [run] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
        await store.dead_letter(run, "failed")
        assert await store.purge_dead(None) == 1
        [forward] = await store.lease("w", 1, 30)  # its forward is pending, with the event
        assert forward.event == {"type": "push", "data": {"id": "e1"}}
        await store.dead_letter(forward, "422")
        assert await store.accept(incoming("e1")) == Accepted("e1", duplicate=True)
        assert await store.purge_dead(None) == 1
        # The event went with its last job, and its delivery id with it.
        assert await store.accept(incoming("e1")) == Accepted("e1", duplicate=False)


# prune


async def test_prune_keeps_an_event_while_any_of_its_jobs_needs_it(kit: StoreKit) -> None:
    async with kit.store(retention=DAY) as store:
        await store.accept(incoming("pending"), [FlowJob("run-p", "deploy")])
        await store.accept(incoming("dead"), [FlowJob("run-d", "deploy")])
        await store.accept(incoming("done"), [FlowJob("run-x", "deploy")])
        for forward in await store.lease("w", 3, 30):
            await store.complete(forward)
        pending, dead, done = await store.lease("runner", 3, 30, kinds=[DEPLOY])
        await store.release(pending)
        await store.dead_letter(dead, "failed")
        await kit.pass_time(DAY / 2)
        await store.complete(done)  # half a day after its forward

        await kit.pass_time(DAY)
        assert await store.prune() == 0  # "done" waits for its flow run's retention
        # The forwards' jobs went; their events stay for the runs.
        assert (await store.stats(kinds=None)).delivered == 1
        await kit.pass_time(DAY)
        assert await store.prune() == 1
        assert (await store.stats(kinds=None)).delivered == 0
        # What stayed can still be leased and replayed with its event.
        [run] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
        assert await store.replay(["run-d"]) == 1
        [replayed] = await store.lease("runner", 1, 30, kinds=[DEPLOY])
        # Only "done" went, with its delivery id.
        repeats = [await store.accept(incoming(id)) for id in ("dead", "pending", "done")]
    assert (run.id, run.event["data"]) == ("run-p", {"id": "pending"})
    assert (replayed.id, replayed.event["data"]) == ("run-d", {"id": "dead"})
    assert [a.duplicate for a in repeats] == [True, True, False]
