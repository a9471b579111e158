"""The SQLite store's tables, versioned with `PRAGMA user_version`.

`events` holds what arrived, exactly once per event: the JSON to forward, the raw request bytes
and headers (for audit and replay), and the provider's delivery id whose uniqueness per source is
the dedupe. `work` holds what must be done about an event, one row per job: `kind` is "forward"
(send it to the MFO server) or "flow:<trigger>" (a flow run the event started, stored in the
same transaction as the event); the kind-specific arguments go in `args`. Job ids are unique
across kinds and across `work` and `dead_letters`, so one id names one job everywhere. A job that
failed for good moves from `work` to `dead_letters` and back on replay, so `work` stays small and
its indexes hot. An event row stays while any job, live or dead, refers to it: leasing and
replaying a job need its event.

While a job is leased its `due_at` holds the lease expiry. One "due" index then answers both
"what can be leased" and "when is the next thing due", and an expired lease needs no sweeper: it
is simply due again.

`job_dedupe` (version 2) remembers, per flow kind and dedupe key, the job that took the key. It
is a table of its own so the key outlives the job's row in `work` (done and pruned, or dead):
the key counts for the retention, and longer while its job is still pending.

`MIGRATIONS[n]` takes a database from version n to n + 1; a new version appends, never edits.
"""

from __future__ import annotations

import sqlite3

from mfo_client.delivery._errors import StoreError

__all__ = ["SCHEMA_VERSION", "migrate"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            id          TEXT PRIMARY KEY,
            source      TEXT NOT NULL,
            delivery_id TEXT,
            body        TEXT NOT NULL,
            raw_body    BLOB NOT NULL,
            headers     TEXT NOT NULL,
            received_at REAL NOT NULL
        )""",
        """CREATE UNIQUE INDEX events_dedupe ON events (source, delivery_id)
            WHERE delivery_id IS NOT NULL""",
        """CREATE TABLE work (
            seq         INTEGER PRIMARY KEY,
            id          TEXT NOT NULL UNIQUE,
            kind        TEXT NOT NULL,
            event_id    TEXT NOT NULL,
            state       TEXT NOT NULL CHECK (state IN ('pending', 'done')),
            attempts    INTEGER NOT NULL DEFAULT 0,
            due_at      REAL NOT NULL,
            lease_owner TEXT,
            lease_token TEXT,
            last_error  TEXT,
            queued_at   REAL NOT NULL,
            done_at     REAL,
            args        TEXT
        )""",
        "CREATE INDEX work_due ON work (kind, due_at) WHERE state = 'pending'",
        "CREATE INDEX work_done ON work (done_at) WHERE state = 'done'",
        "CREATE INDEX work_event ON work (event_id)",
        """CREATE TABLE dead_letters (
            seq        INTEGER PRIMARY KEY,
            id         TEXT NOT NULL UNIQUE,
            kind       TEXT NOT NULL,
            event_id   TEXT NOT NULL,
            attempts   INTEGER NOT NULL,
            last_error TEXT NOT NULL,
            failed_at  REAL NOT NULL,
            args       TEXT
        )""",
        "CREATE INDEX dead_letters_event ON dead_letters (event_id)",
        "CREATE INDEX dead_letters_failed ON dead_letters (failed_at)",
        # Scratch space for the health probe, which writes and deletes a row in one transaction.
        "CREATE TABLE probe (data BLOB NOT NULL)",
    ),
    (
        """CREATE TABLE job_dedupe (
            kind       TEXT NOT NULL,
            key        TEXT NOT NULL,
            job_id     TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (kind, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX job_dedupe_created ON job_dedupe (created_at)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema up to date; call inside a write transaction so only one process does."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the event store {path} has schema version {version}, but this mfo-client only "
            f"knows versions up to {SCHEMA_VERSION}; upgrade mfo-client to use it"
        )
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            conn.execute(statement)
        # PRAGMA takes no parameters; the value is an int from range(), never user input.
        conn.execute(f"PRAGMA user_version = {step + 1:d}")
