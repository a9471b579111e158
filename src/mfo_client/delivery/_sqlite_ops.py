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
from mfo_client.delivery._models import FORWARD
from mfo_client.delivery._sqlite_schema import migrate
from mfo_client.delivery._sqlite_writer import Tx

FULL_RETRY_AFTER: Final = 5.0
"""Seconds a sender is asked to wait when the outbox is full: long enough to drain a little."""

PROBE_BYTES: Final = 8192
"""The health probe writes this much, about one event, so "healthy" means "an event fits"."""

_DEAD_COLUMNS: Final = """
    d.id, e.source, e.body, d.attempts, d.last_error, d.failed_at, e.received_at, e.raw_body,
    d.kind, d.event_id
    FROM dead_letters AS d JOIN events AS e ON e.id = d.event_id"""

_KEY_LIVE: Final = """(
    d.created_at >= :cutoff
    OR EXISTS (SELECT 1 FROM work AS w WHERE w.id = d.job_id
               AND (w.state = 'pending' OR w.done_at >= :cutoff))
    OR EXISTS (SELECT 1 FROM dead_letters AS x WHERE x.id = d.job_id AND x.failed_at >= :cutoff))"""
"""Whether the dedupe key `d` still counts: taken within the retention, or its job is pending, or
finished (done or dead) within the retention. `:cutoff` is now minus the retention."""


class JobRow(NamedTuple):
    id: str
    kind: str
    dedupe_key: str | None


class LeaseRow(NamedTuple):
    id: str
    kind: str
    event_id: str
    body: str
    attempts: int
    token: str
    source: str


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
    """The source of the event with this id; "" if a flow job has the id; None if it is free."""
    row = conn.execute("SELECT source FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is not None:
        return str(row[0])
    # A forward job's id is its event's id, so an event id must not be a flow job's id either.
    return "" if _job_exists(conn, event_id) else None


def _job_exists(conn: sqlite3.Connection, id_: str) -> bool:
    (taken,) = conn.execute(
        """SELECT EXISTS (SELECT 1 FROM work WHERE id = ?1)
               OR EXISTS (SELECT 1 FROM dead_letters WHERE id = ?1)""",
        (id_,),
    ).fetchone()
    return bool(taken)


def accept(
    tx: Tx,
    row: EventRow,
    jobs: Sequence[JobRow],
    *,
    max_pending: int,
    now: float,
    cutoff: float,
) -> tuple[str, bool, list[tuple[str, bool]]]:
    """Store the event, its forward job and its flow jobs; returns (id, duplicate, jobs), with
    (id, duplicate) per flow job. `cutoff` is now minus the retention, for the dedupe keys."""
    conn = tx.conn
    if row.delivery_id is not None:
        seen = conn.execute(
            "SELECT id FROM events WHERE source = ? AND delivery_id = ?",
            (row.source, row.delivery_id),
        ).fetchone()
        if seen is not None:
            return str(seen[0]), True, []
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
        return event_id, True, []
    # Refused only once the limit is reached, so an event's flow jobs may overshoot it by a few:
    # an event never goes in without its jobs, and one with more jobs than room would never fit.
    if tx.pending >= max_pending:
        raise StoreFullError(
            f"the outbox holds {tx.pending} jobs not yet done (forwards and flow runs), its "
            "limit (max_pending); new events are refused until the work catches up",
            retry_after=FULL_RETRY_AFTER,
        )
    conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", (event_id, *row[1:]))
    _insert_job(tx, event_id, FORWARD, event_id, now)
    return event_id, False, [_flow_job(tx, job, event_id, now=now, cutoff=cutoff) for job in jobs]


def _insert_job(tx: Tx, id_: str, kind: str, event_id: str, now: float) -> None:
    tx.conn.execute(
        """INSERT INTO work (id, kind, event_id, state, due_at, queued_at)
           VALUES (?, ?, ?, 'pending', ?, ?)""",
        (id_, kind, event_id, now, now),
    )
    tx.pending += 1


def _flow_job(tx: Tx, job: JobRow, event_id: str, *, now: float, cutoff: float) -> tuple[str, bool]:
    """Enqueue one flow job unless its dedupe key is taken; returns (job id, duplicate)."""
    conn = tx.conn
    if job.dedupe_key is not None:
        hit = conn.execute(
            f"""SELECT d.job_id, {_KEY_LIVE} FROM job_dedupe AS d
                WHERE d.kind = :kind AND d.key = :key""",  # noqa: S608 (constants and placeholders)
            {"kind": job.kind, "key": job.dedupe_key, "cutoff": cutoff},
        ).fetchone()
        if hit is not None and hit[1]:
            return str(hit[0]), True
    if _job_exists(conn, job.id):
        # Raised inside the call's savepoint: the event and its other jobs go too.
        raise StoreError(
            f"the flow job id {job.id!r} ({job.kind}) is already taken by another job or event "
            "in the store; give every flow run an id of its own (a UUID); nothing was stored"
        )
    _insert_job(tx, job.id, job.kind, event_id, now)
    if job.dedupe_key is not None:
        # An expired key is taken over by the new job.
        conn.execute(
            """INSERT INTO job_dedupe (kind, key, job_id, created_at) VALUES (?, ?, ?, ?)
               ON CONFLICT (kind, key) DO UPDATE
               SET job_id = excluded.job_id, created_at = excluded.created_at""",
            (job.kind, job.dedupe_key, job.id, now),
        )
    return job.id, False


def lease(
    tx: Tx, owner: str, limit: int, kinds: Sequence[str], *, expires_at: float, now: float
) -> list[LeaseRow]:
    """Lease the `limit` due jobs of `kinds` that have waited longest."""
    found: list[tuple[Any, ...]] = []
    # One query per kind walks the "due" index in order and stops at `limit`; a single
    # `kind IN (...)` query would sort every due job of those kinds first.
    for kind in dict.fromkeys(kinds):
        found += tx.conn.execute(
            """SELECT w.due_at, w.seq, w.id, w.kind, w.event_id, e.body, w.attempts, e.source
               FROM work AS w JOIN events AS e ON e.id = w.event_id
               WHERE w.kind = ? AND w.state = 'pending' AND w.due_at <= ?
               ORDER BY w.due_at, w.seq LIMIT ?""",
            (kind, now, limit),
        ).fetchall()
    found.sort(key=lambda row: (row[0], row[1]))
    leased = [
        (seq, LeaseRow(id_, kind, event_id, body, attempts, uuid.uuid4().hex, source))
        for _, seq, id_, kind, event_id, body, attempts, source in found[:limit]
    ]
    tx.conn.executemany(
        "UPDATE work SET lease_owner = ?, lease_token = ?, due_at = ? WHERE seq = ?",
        [(owner, lease.token, expires_at, seq) for seq, lease in leased],
    )
    return [lease for _, lease in leased]


def renew(tx: Tx, id_: str, token: str, *, expires_at: float) -> bool:
    cursor = tx.conn.execute(
        "UPDATE work SET due_at = ? WHERE id = ? AND lease_token = ? AND state = 'pending'",
        (expires_at, id_, token),
    )
    return cursor.rowcount == 1


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


def next_due_at(tx: Tx, kinds: Sequence[str]) -> float | None:
    # Per kind, min() is one step down the "due" index.
    dues = [
        due_at
        for kind in dict.fromkeys(kinds)
        for (due_at,) in tx.conn.execute(
            "SELECT min(due_at) FROM work WHERE kind = ? AND state = 'pending'", (kind,)
        )
        if due_at is not None
    ]
    return float(min(dues)) if dues else None


def _kind_filter(kinds: Sequence[str] | None, column: str = "kind") -> tuple[str, tuple[str, ...]]:
    """An SQL condition on `column` (placeholders only) and its parameters; None: every kind."""
    if kinds is None:
        return "1", ()
    wanted = tuple(dict.fromkeys(kinds))
    return f"{column} IN ({', '.join('?' * len(wanted))})", wanted


def stats(
    tx: Tx, kinds: Sequence[str] | None, *, now: float
) -> tuple[int, int, int, int, float | None]:
    """(pending, in_flight, delivered, dead, oldest queued_at) of the jobs of `kinds`."""
    conn = tx.conn
    where, params = _kind_filter(kinds)
    waiting, in_flight, oldest = conn.execute(
        f"""SELECT
               count(*) FILTER (WHERE lease_token IS NULL OR due_at <= ?),
               count(*) FILTER (WHERE lease_token IS NOT NULL AND due_at > ?),
               min(queued_at)
           FROM work WHERE state = 'pending' AND {where}""",  # noqa: S608 (constants and placeholders)
        (now, now, *params),
    ).fetchone()
    done_sql = f"SELECT count(*) FROM work WHERE state = 'done' AND {where}"  # noqa: S608 (as above)
    dead_sql = f"SELECT count(*) FROM dead_letters WHERE {where}"  # noqa: S608 (as above)
    (delivered,) = conn.execute(done_sql, params).fetchone()
    (dead,) = conn.execute(dead_sql, params).fetchone()
    return waiting, in_flight, delivered, dead, oldest


def kinds(tx: Tx) -> list[str]:
    """The kinds with pending (or in-flight) or dead jobs."""
    # A skip scan of the "due" index: one lookup per kind, however many jobs wait.
    rows = tx.conn.execute(
        """WITH RECURSIVE pending (kind) AS (
               SELECT min(kind) FROM work WHERE state = 'pending'
               UNION ALL
               SELECT (SELECT min(kind) FROM work WHERE state = 'pending' AND kind > pending.kind)
               FROM pending WHERE pending.kind IS NOT NULL
           )
           SELECT kind FROM pending WHERE kind IS NOT NULL
           UNION SELECT kind FROM dead_letters"""
    ).fetchall()
    return [str(kind) for (kind,) in rows]


def list_dead(
    tx: Tx, limit: int, after: str | None, kinds: Sequence[str] | None
) -> list[tuple[Any, ...]]:
    start = 0
    if after is not None:
        row = tx.conn.execute("SELECT seq FROM dead_letters WHERE id = ?", (after,)).fetchone()
        if row is None:
            raise StoreError(
                f"no dead letter {after!r} to continue after: it was replayed or purged "
                "meanwhile; list again from the start"
            )
        start = row[0]
    where, params = _kind_filter(kinds, "d.kind")
    return tx.conn.execute(
        f"SELECT {_DEAD_COLUMNS} WHERE d.seq > ? AND {where} ORDER BY d.seq LIMIT ?",
        (start, *params, limit),
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


def prune_keys(tx: Tx, *, before: float, limit: int) -> int:
    """Forget up to `limit` dedupe keys that no longer count (see `_KEY_LIVE`); how many."""
    rows = tx.conn.execute(
        f"""SELECT d.kind, d.key FROM job_dedupe AS d
            WHERE d.created_at < :cutoff AND NOT {_KEY_LIVE} LIMIT :limit""",  # noqa: S608 (constants and placeholders)
        {"cutoff": before, "limit": limit},
    ).fetchall()
    tx.conn.executemany("DELETE FROM job_dedupe WHERE kind = ? AND key = ?", rows)
    return len(rows)


def probe(tx: Tx) -> None:
    """Write about one event's worth and take it back: fails exactly when an event would."""
    tx.conn.execute("INSERT INTO probe (data) VALUES (zeroblob(?))", (PROBE_BYTES,))
    tx.conn.execute("DELETE FROM probe")
