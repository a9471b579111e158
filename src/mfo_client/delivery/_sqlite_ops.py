"""The SQL of each store operation, run on the writer thread inside its transaction.

These functions return plain rows; decoding JSON and building the public dataclasses happens
back on the event loop, so the single writer thread spends its time on SQLite alone.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

from mfo_client.delivery._errors import StoreError, StoreFullError
from mfo_client.delivery._sqlite_schema import migrate
from mfo_client.delivery._sqlite_writer import Tx

FORWARD: Final = "forward"
"""The work kind of sending an event to the MFO server (flow runs come later)."""

FULL_RETRY_AFTER: Final = 5.0
"""Seconds a sender is asked to wait when the outbox is full: long enough to drain a little."""

PROBE_BYTES: Final = 8192
"""The health probe writes this much, about one event, so "healthy" means "an event fits"."""

_DEAD_COLUMNS: Final = """
    d.id, e.source, e.body, d.attempts, d.last_error, d.failed_at, e.received_at, e.raw_body
    FROM dead_letters AS d JOIN events AS e ON e.id = d.event_id"""


class EventRow(NamedTuple):
    id: str
    source: str
    delivery_id: str | None
    body: str
    raw_body: bytes
    headers: str
    received_at: float


MAX_ID_LENGTH: Final = 255


def count_pending(conn: sqlite3.Connection) -> int:
    (count,) = conn.execute("SELECT count(*) FROM work WHERE state = 'pending'").fetchone()
    return int(count)


def setup(tx: Tx, path: str, *, serving: bool, now: float) -> None:
    """Create or migrate the schema; a serving store then frees the leases of its dead past."""
    migrate(tx.conn, path)
    if serving:
        # One process serves a file (the lock says so), so every lease left over belongs to a
        # worker that died with the previous process: its events are due right now.
        tx.conn.execute(
            """UPDATE work SET due_at = ?, lease_owner = NULL, lease_token = NULL
               WHERE state = 'pending' AND lease_token IS NOT NULL""",
            (now,),
        )
    tx.pending = count_pending(tx.conn)


def _owner(conn: sqlite3.Connection, event_id: str) -> str | None:
    row = conn.execute("SELECT source FROM events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else str(row[0])


def accept(tx: Tx, row: EventRow, *, max_pending: int, now: float) -> tuple[str, bool]:
    """Store the event and its forward job; returns (id, duplicate)."""
    conn = tx.conn
    if row.delivery_id is not None:
        seen = conn.execute(
            "SELECT id FROM events WHERE source = ? AND delivery_id = ?",
            (row.source, row.delivery_id),
        ).fetchone()
        if seen is not None:
            return str(seen[0]), True
    event_id = row.id
    owner = _owner(conn, event_id)
    if owner is not None and owner != row.source:
        event_id = f"{row.source}:{row.id}"
        if len(event_id) > MAX_ID_LENGTH:  # ids are also Idempotency-Keys: 255 at most
            event_id = f"{row.source}:{hashlib.sha256(row.id.encode()).hexdigest()}"
        owner = _owner(conn, event_id)
        if owner is not None and owner != row.source:
            # Only reachable if another source chose "<source>:<id>" as an id of its own.
            event_id, owner = f"{row.source}:{uuid.uuid4()}", None
    if owner is not None:
        # The same source sent the same event id again: the same event, whatever its dedupe id.
        return event_id, True
    if tx.pending >= max_pending:
        raise StoreFullError(
            f"the outbox holds {tx.pending} undelivered events, its limit (max_pending); "
            "new events are refused until forwarding catches up",
            retry_after=FULL_RETRY_AFTER,
        )
    conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", (event_id, *row[1:]))
    conn.execute(
        """INSERT INTO work (id, kind, event_id, state, due_at, queued_at)
           VALUES (?, ?, ?, 'pending', ?, ?)""",
        (event_id, FORWARD, event_id, now, now),
    )
    tx.pending += 1
    return event_id, False


def lease(
    tx: Tx, owner: str, limit: int, *, expires_at: float, now: float
) -> list[tuple[str, str, int, str, str]]:
    """Lease due forward jobs; returns (id, body, attempts, token, source) rows."""
    rows = tx.conn.execute(
        """SELECT w.seq, w.id, e.body, w.attempts, e.source
           FROM work AS w JOIN events AS e ON e.id = w.event_id
           WHERE w.kind = ? AND w.state = 'pending' AND w.due_at <= ?
           ORDER BY w.due_at, w.seq LIMIT ?""",
        (FORWARD, now, limit),
    ).fetchall()
    leased = [
        (seq, id_, body, attempts, uuid.uuid4().hex, source)
        for seq, id_, body, attempts, source in rows
    ]
    tx.conn.executemany(
        "UPDATE work SET lease_owner = ?, lease_token = ?, due_at = ? WHERE seq = ?",
        [(owner, token, expires_at, seq) for seq, _, _, _, token, _ in leased],
    )
    return [
        (id_, body, attempts, token, source) for _, id_, body, attempts, token, source in leased
    ]


def complete(tx: Tx, id_: str, token: str, *, now: float) -> None:
    cursor = tx.conn.execute(
        """UPDATE work SET state = 'done', done_at = ?, lease_owner = NULL, lease_token = NULL
           WHERE id = ? AND lease_token = ? AND state = 'pending'""",
        (now, id_, token),
    )
    tx.pending -= cursor.rowcount


def retry_later(tx: Tx, id_: str, token: str, error: str, *, due_at: float) -> None:
    tx.conn.execute(
        """UPDATE work SET attempts = attempts + 1, due_at = ?, last_error = ?,
               lease_owner = NULL, lease_token = NULL
           WHERE id = ? AND lease_token = ? AND state = 'pending'""",
        (due_at, error, id_, token),
    )


def release(tx: Tx, id_: str, token: str, *, due_at: float) -> None:
    """Give a lease back unsettled: no attempt is counted (shutdown, an open breaker)."""
    tx.conn.execute(
        """UPDATE work SET due_at = ?, lease_owner = NULL, lease_token = NULL
           WHERE id = ? AND lease_token = ? AND state = 'pending'""",
        (due_at, id_, token),
    )


def dead_letter(tx: Tx, id_: str, token: str, error: str, *, now: float) -> None:
    cursor = tx.conn.execute(
        """INSERT INTO dead_letters (id, kind, event_id, attempts, last_error, failed_at, args)
           SELECT id, kind, event_id, attempts + 1, ?, ?, args FROM work
           WHERE id = ? AND lease_token = ? AND state = 'pending'""",
        (error, now, id_, token),
    )
    if cursor.rowcount:
        tx.conn.execute("DELETE FROM work WHERE id = ?", (id_,))
        tx.pending -= 1


def next_due_at(tx: Tx) -> float | None:
    (due_at,) = tx.conn.execute(
        "SELECT min(due_at) FROM work WHERE kind = ? AND state = 'pending'", (FORWARD,)
    ).fetchone()
    return None if due_at is None else float(due_at)


def stats(tx: Tx, *, now: float) -> tuple[int, int, int, int, float | None]:
    """(pending, in_flight, delivered, dead, oldest queued_at) of forward jobs."""
    conn = tx.conn
    waiting, in_flight, oldest = conn.execute(
        """SELECT
               count(*) FILTER (WHERE lease_token IS NULL OR due_at <= ?),
               count(*) FILTER (WHERE lease_token IS NOT NULL AND due_at > ?),
               min(queued_at)
           FROM work WHERE kind = ? AND state = 'pending'""",
        (now, now, FORWARD),
    ).fetchone()
    (delivered,) = conn.execute(
        "SELECT count(*) FROM work WHERE kind = ? AND state = 'done'", (FORWARD,)
    ).fetchone()
    (dead,) = conn.execute(
        "SELECT count(*) FROM dead_letters WHERE kind = ?", (FORWARD,)
    ).fetchone()
    return waiting, in_flight, delivered, dead, oldest


def list_dead(tx: Tx, limit: int, after: str | None) -> list[tuple[Any, ...]]:
    start = 0
    if after is not None:
        row = tx.conn.execute("SELECT seq FROM dead_letters WHERE id = ?", (after,)).fetchone()
        if row is None:
            raise StoreError(
                f"no dead letter {after!r} to continue after: it was replayed or purged "
                "meanwhile; list again from the start"
            )
        start = row[0]
    return tx.conn.execute(
        f"SELECT {_DEAD_COLUMNS} WHERE d.seq > ? ORDER BY d.seq LIMIT ?",
        (start, limit),
    ).fetchall()


def get_dead(tx: Tx, id_: str) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = tx.conn.execute(
        f"SELECT {_DEAD_COLUMNS} WHERE d.id = ?",
        (id_,),
    ).fetchone()
    return row


def replay(tx: Tx, ids: Sequence[str] | None, *, now: float) -> int:
    """Move dead letters back to `work`, in the order they failed, with no attempts counted."""
    conn = tx.conn
    if ids is None:
        seqs = [seq for (seq,) in conn.execute("SELECT seq FROM dead_letters ORDER BY seq")]
    else:
        seqs = [
            row[0]
            for id_ in dict.fromkeys(ids)
            if (row := conn.execute("SELECT seq FROM dead_letters WHERE id = ?", (id_,)).fetchone())
        ]
        seqs.sort()
    conn.executemany(
        """INSERT INTO work (id, kind, event_id, state, attempts, due_at, queued_at, args)
           SELECT id, kind, event_id, 'pending', 0, ?, ?, args FROM dead_letters WHERE seq = ?""",
        [(now, now, seq) for seq in seqs],
    )
    conn.executemany("DELETE FROM dead_letters WHERE seq = ?", [(seq,) for seq in seqs])
    tx.pending += len(seqs)
    return len(seqs)


def _drop_unreferenced(conn: sqlite3.Connection, event_ids: Iterable[str]) -> int:
    """Delete those events no job refers to any more; their dedupe ids go with them."""
    cursor = conn.executemany(
        """DELETE FROM events WHERE id = ?1
           AND NOT EXISTS (SELECT 1 FROM work WHERE event_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_id = ?1)""",
        [(event_id,) for event_id in set(event_ids)],
    )
    return cursor.rowcount


def purge_dead(tx: Tx, older_than: float | None, *, now: float) -> int:
    cutoff = math.inf if older_than is None else now - older_than
    rows = tx.conn.execute(
        "SELECT seq, event_id FROM dead_letters WHERE failed_at < ?", (cutoff,)
    ).fetchall()
    tx.conn.executemany("DELETE FROM dead_letters WHERE seq = ?", [(seq,) for seq, _ in rows])
    _drop_unreferenced(tx.conn, (event_id for _, event_id in rows))
    return len(rows)


def prune_some(tx: Tx, *, before: float, limit: int) -> tuple[int, int]:
    """Delete up to `limit` jobs done before `before`; returns (jobs, events) deleted."""
    rows = tx.conn.execute(
        "SELECT seq, event_id FROM work WHERE state = 'done' AND done_at < ? LIMIT ?",
        (before, limit),
    ).fetchall()
    tx.conn.executemany("DELETE FROM work WHERE seq = ?", [(seq,) for seq, _ in rows])
    return len(rows), _drop_unreferenced(tx.conn, (event_id for _, event_id in rows))


def probe(tx: Tx) -> None:
    """Write about one event's worth and take it back: fails exactly when an event would."""
    tx.conn.execute("INSERT INTO probe (data) VALUES (zeroblob(?))", (PROBE_BYTES,))
    tx.conn.execute("DELETE FROM probe")
