"""Intake: an accepted event is committed, repeats are dropped, and a full outbox says so.

Tests taking `kit` run on both backends; the others are about SQLite's own storage.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import mfo_client.delivery as delivery
from mfo_client.delivery import (
    Accepted,
    IncomingEvent,
    SQLiteStore,
    StoreError,
    StoreFullError,
)
from tests._stores import StoreKit


def incoming(
    id: str, *, source: str = "github", delivery_id: str | None = None, **event: Any
) -> IncomingEvent:
    return IncomingEvent(
        id=id,
        source=source,
        delivery_id=delivery_id,
        event={"type": "push", "data": {"id": id, **event}},
        raw_body=f'{{"id": "{id}"}}'.encode(),
        headers={"x-github-event": "push"},
        received_at=1_700_000_000.0,
    )


def rows(path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Read the file through a connection of its own: it sees committed data only."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


def test_all_is_sorted_and_complete() -> None:
    # Sorted the way ruff sorts `__all__`: constants first.
    assert delivery.__all__ == sorted(delivery.__all__, key=lambda s: (not s.isupper(), s))
    assert [name for name in delivery.__all__ if not hasattr(delivery, name)] == []
    names = ["EventStore", "RedisStore", "SQLiteStore", "StoreFullError", "StoreUnavailableError"]
    for name in names:
        assert name in delivery.__all__
    assert issubclass(delivery.StoreFullError, StoreError)
    assert issubclass(delivery.StoreUnavailableError, StoreError)


async def test_accept_returns_once_committed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path) as store:
        accepted = await store.accept(incoming("evt-1", delivery_id="d-1"))
        assert accepted == Accepted(id="evt-1", duplicate=False)
        # Still open: another connection sees the event, so it was committed, not just written.
        stored = rows(path, "SELECT id, source, delivery_id, raw_body, headers FROM events")
        assert stored == [
            ("evt-1", "github", "d-1", b'{"id": "evt-1"}', '{"x-github-event":"push"}')
        ]
    async with SQLiteStore(path) as reopened:
        [lease] = await reopened.lease("w", 10, 30)
        assert lease.id == "evt-1"
        assert lease.event == {"type": "push", "data": {"id": "evt-1"}}


async def test_an_accepted_event_is_seen_by_another_connection(kit: StoreKit) -> None:
    async with kit.store() as store:
        accepted = await store.accept(incoming("evt-1", delivery_id="d-1"))
        assert accepted == Accepted(id="evt-1", duplicate=False)
        # Another connection (here an admin's) sees it while the first is still open.
        async with kit.store(role="admin") as other:
            assert (await other.stats()).pending == 1
    async with kit.store() as reopened:
        [lease] = await reopened.lease("w", 10, 30)
    assert (lease.id, lease.source, lease.attempts) == ("evt-1", "github", 0)
    assert lease.event == {"type": "push", "data": {"id": "evt-1"}}


async def test_concurrent_accepts_share_commits(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path) as store:
        before = store.commits
        results = await asyncio.gather(*(store.accept(incoming(f"e{i}")) for i in range(200)))
        commits = store.commits - before
    assert sorted(r.id for r in results) == sorted(f"e{i}" for i in range(200))
    assert not any(r.duplicate for r in results)
    assert rows(path, "SELECT count(*) FROM events") == [(200,)]
    assert 1 <= commits <= 10, f"200 events took {commits} commits"


async def test_a_repeated_delivery_is_stored_once(kit: StoreKit) -> None:
    async with kit.store() as store:
        first = await store.accept(incoming("a", delivery_id="d-1"))
        again = await store.accept(incoming("b", delivery_id="d-1"))
        other_source = await store.accept(incoming("c", source="stripe", delivery_id="d-1"))
        no_dedupe = [await store.accept(incoming(i)) for i in ("x", "y")]
        stats = await store.stats()
    assert first == Accepted("a", duplicate=False)
    assert again == Accepted("a", duplicate=True)
    assert other_source == Accepted("c", duplicate=False)
    assert no_dedupe == [Accepted("x", False), Accepted("y", False)]
    assert stats.pending == 4


async def test_an_id_taken_by_another_source_is_prefixed(kit: StoreKit) -> None:
    async with kit.store() as store:
        github = await store.accept(incoming("42"))
        gitlab = await store.accept(incoming("42", source="gitlab"))
        gitlab_again = await store.accept(incoming("42", source="gitlab"))
        leases = await store.lease("w", 10, 30)
    assert github == Accepted("42", duplicate=False)
    assert gitlab == Accepted("gitlab:42", duplicate=False)
    assert gitlab_again == Accepted("gitlab:42", duplicate=True)
    assert [(lease.id, lease.source) for lease in leases] == [
        ("42", "github"),
        ("gitlab:42", "gitlab"),
    ]


async def test_a_full_outbox_refuses_new_events(kit: StoreKit) -> None:
    async with kit.store(max_pending=3) as store:
        for i in range(3):
            await store.accept(incoming(f"e{i}", delivery_id=f"d{i}"))
        with pytest.raises(StoreFullError, match="max_pending") as refused:
            await store.accept(incoming("e3"))
        assert refused.value.retry_after > 0
        # A repeat stores nothing, so it is still answered.
        assert await store.accept(incoming("e0", delivery_id="d0")) == Accepted("e0", True)
        assert (await store.stats(kinds=None)).pending == 3

        # In-flight events still count; a delivered one frees its slot.
        [lease] = await store.lease("w", 1, 30)
        with pytest.raises(StoreFullError):
            await store.accept(incoming("e3"))
        await store.complete(lease)
        assert await store.accept(incoming("e3")) == Accepted("e3", duplicate=False)


async def test_concurrent_accepts_stop_exactly_at_the_limit(kit: StoreKit) -> None:
    async with kit.store(max_pending=50) as store:
        results = await asyncio.gather(
            *(store.accept(incoming(f"e{i}")) for i in range(80)), return_exceptions=True
        )
        stats = await store.stats()
    accepted = [r for r in results if isinstance(r, Accepted)]
    refused = [r for r in results if isinstance(r, StoreFullError)]
    assert (len(accepted), len(refused)) == (50, 30)
    assert stats.pending == 50


async def test_accept_needs_an_open_store(kit: StoreKit) -> None:
    store = kit.store()
    with pytest.raises(StoreError, match="not open"):
        await store.accept(incoming("e"))
    async with store:
        with pytest.raises(StoreError, match="already open"):
            await store.open()


async def test_a_lock_held_elsewhere_fails_the_waiting_batch_at_once_then_recovers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path, busy_timeout=0.2) as store:
        await store.accept(incoming("warm-up"))
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # e.g. a long admin command in another process
            results = await asyncio.gather(
                *(store.accept(incoming(f"evt-{n}")) for n in range(20)), return_exceptions=True
            )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert all(isinstance(r, delivery.StoreUnavailableError) for r in results)
        assert "database is locked" in str(results[0])
        assert await store.accept(incoming("after")) == Accepted(id="after", duplicate=False)
