"""What is particular to the SQLite file: its lock, its settings, and failing to write."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from mfo_client.delivery import (
    Accepted,
    IncomingEvent,
    SQLiteStore,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
)

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def incoming(id: str, body: bytes = b"{}") -> IncomingEvent:
    return IncomingEvent(
        id=id,
        source="github",
        delivery_id=id,
        event={"type": "push", "data": {"id": id}},
        raw_body=body,
        headers={},
        received_at=T0,
    )


def pragma(path: Path, name: str) -> object:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


async def test_a_new_store_is_created_with_its_directories(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "mfo" / "outbox.db"
    async with SQLiteStore(path) as store:
        assert await store.pragma("synchronous") == 1  # NORMAL
        assert await store.pragma("journal_mode") == "wal"
    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "user_version") == 2


async def test_fsync_full_syncs_every_commit(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "outbox.db", fsync="full") as store:
        assert await store.pragma("synchronous") == 2  # FULL
        assert await store.accept(incoming("e0")) == Accepted("e0", duplicate=False)


async def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    store = SQLiteStore(path)
    with pytest.raises(StoreError, match=r"schema version 99.*upgrade mfo-client"):
        await store.open()
    # The failed open let go of the lock.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 0")
    async with SQLiteStore(path):
        pass


async def test_one_server_per_file_but_admins_alongside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path) as server:
        await server.accept(incoming("e0"))
        second = SQLiteStore(path)
        with pytest.raises(
            StoreError, match=rf"already used by another mfo serve \(pid {os.getpid()}\)"
        ):
            await second.open()
        async with SQLiteStore(path, role="admin") as admin:
            assert (await admin.stats()).pending == 1
    async with SQLiteStore(path) as next_server:
        assert (await next_server.stats()).pending == 1


async def test_an_admin_replay_counts_against_the_servers_limit(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path, max_pending=2) as server:
        await server.accept(incoming("e0"))
        await server.accept(incoming("e1"))
        [lease, _] = await server.lease("w", 2, 30)
        await server.dead_letter(lease, "422")
        async with SQLiteStore(path, role="admin") as admin:
            assert await admin.replay(None) == 1
        # The server's cached count learns of the other connection's commit.
        with pytest.raises(StoreFullError):
            await server.accept(incoming("e2"))


async def test_a_full_database_is_unavailable_until_space_is_freed(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "outbox.db"

    def capped() -> SQLiteStore:
        # A real "database or disk is full" from SQLite, at 256 KiB instead of a full disk.
        return SQLiteStore(path, clock=clock, retention=60, max_db_bytes=256 * 1024)

    async with capped() as store:
        stored: list[str] = []
        with pytest.raises(StoreUnavailableError, match="database or disk is full"):
            for i in range(100):
                stored.append((await store.accept(incoming(f"e{i}", bytes(8000)))).id)
        assert 10 < len(stored) < 100
        assert await store.healthy() is False
        # What was acknowledged before is intact.
        assert (await store.stats()).pending == len(stored)

    # A full store still starts, so its forwarders can drain it.
    async with capped() as store:
        assert await store.healthy() is False
        for lease in await store.lease("w", 100, 30):
            await store.complete(lease)
        # Delivered events still take their space until pruned.
        assert await store.healthy() is False
        clock.now += 61
        assert await store.prune() == len(stored)
        assert await store.healthy() is True
        assert await store.accept(incoming("after")) == Accepted("after", duplicate=False)


async def test_only_what_fits_is_acknowledged_when_the_disk_fills_mid_batch(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path, max_db_bytes=256 * 1024) as store:
        results = await asyncio.gather(
            *(store.accept(incoming(f"e{i}", bytes(8000))) for i in range(60)),
            return_exceptions=True,
        )
    acknowledged = {r.id for r in results if isinstance(r, Accepted)}
    refused = [r for r in results if not isinstance(r, Accepted)]
    assert acknowledged
    assert refused
    assert all(isinstance(r, StoreUnavailableError) for r in refused)
    with closing(sqlite3.connect(path)) as conn:
        stored = {id for (id,) in conn.execute("SELECT id FROM events")}
    assert stored == acknowledged


def ignores_permissions(tmp_path: Path) -> bool:
    """Root (with CAP_DAC_OVERRIDE) writes to read-only files anyway."""
    probe = tmp_path / "probe"
    probe.touch(mode=0o444)
    try:
        probe.open("ab").close()
    except PermissionError:
        return False
    return True


async def test_a_read_only_database_can_be_read_but_not_served(tmp_path: Path) -> None:
    if ignores_permissions(tmp_path):
        pytest.skip("this user may write read-only files")
    path = tmp_path / "outbox.db"
    async with SQLiteStore(path) as store:
        await store.accept(incoming("e0"))
    path.chmod(0o444)
    try:
        with pytest.raises(StoreUnavailableError, match="readonly database"):
            await SQLiteStore(path).open()
        async with SQLiteStore(path, role="admin") as admin:
            assert (await admin.stats()).pending == 1
            assert await admin.healthy() is False
            with pytest.raises(StoreUnavailableError, match=r"outbox\.db"):
                await admin.accept(incoming("e1"))
    finally:
        path.chmod(0o644)
