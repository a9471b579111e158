"""A store file made by an earlier release opens, migrates and keeps what it held."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from mfo_client.delivery import (
    FORWARD,
    FlowJob,
    IncomingEvent,
    JobAccepted,
    SQLiteStore,
    flow_kind,
)
from mfo_client.delivery._sqlite_schema import MIGRATIONS, SCHEMA_VERSION

T0 = 1_700_000_000.0


def version_1_store(path: Path) -> None:
    """What the previous release wrote: schema version 1, one pending and one dead event."""
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        for id in ("old-1", "old-2"):
            conn.execute(
                "INSERT INTO events VALUES (?, 'github', ?, ?, ?, '{}', ?)",
                (id, f"d-{id}", f'{{"type":"push","id":"{id}"}}', b"raw", T0),
            )
        conn.execute(
            """INSERT INTO work (id, kind, event_id, state, due_at, queued_at)
               VALUES ('old-1', 'forward', 'old-1', 'pending', ?, ?)""",
            (T0, T0),
        )
        conn.execute(
            """INSERT INTO dead_letters (id, kind, event_id, attempts, last_error, failed_at)
               VALUES ('old-2', 'forward', 'old-2', 3, '422', ?)""",
            (T0,),
        )


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


async def test_a_version_1_store_is_migrated_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    version_1_store(path)

    async with SQLiteStore(path, clock=lambda: T0 + 10) as store:
        [lease] = await store.lease("w", 10, 30)
        [letter] = await store.list_dead()
        accepted = await store.accept(
            IncomingEvent("new", "github", "d-new", {"type": "push"}, b"{}", {}, T0),
            [FlowJob("run-1", "deploy", "k"), FlowJob("run-2", "deploy", "k")],
        )
        kinds = await store.kinds()

    assert SCHEMA_VERSION == 2
    assert user_version(path) == SCHEMA_VERSION
    assert (lease.id, lease.kind, lease.event_id, lease.event["id"]) == (
        "old-1",
        FORWARD,
        "old-1",
        "old-1",
    )
    assert (letter.id, letter.kind, letter.event_id, letter.attempts) == (
        "old-2",
        FORWARD,
        "old-2",
        3,
    )
    assert accepted.jobs == (
        JobAccepted("deploy", "run-1", False),
        JobAccepted("deploy", "run-1", True),
    )
    assert kinds == [flow_kind("deploy"), FORWARD]
    # Opening again finds nothing left to migrate.
    async with SQLiteStore(path):
        pass
    assert user_version(path) == SCHEMA_VERSION
