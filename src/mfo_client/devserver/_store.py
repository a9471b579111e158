"""SQLite storage of the dev server: one generic table of JSON records, tokens, idempotency.

Every resource is a JSON document in `records`, filed under its kind and one `grp` value that
its list endpoint filters on (event type, chat thread, resource type, recipient). `seq` gives the
stable insertion order that cursors point into.

One connection guarded by a lock, called straight from the event loop: each call is one short
transaction, which is fast enough for a dev server, and a route's read-then-write (cancelling a
job) cannot interleave with another request because nothing awaits in between.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from dataclasses import dataclass

__all__ = ["IdempotentResponse", "Store", "TokenGrant"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    grp  TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (kind, id)
);
CREATE INDEX IF NOT EXISTS records_by_group ON records (kind, grp, seq);
CREATE TABLE IF NOT EXISTS tokens (
    access_hash        TEXT PRIMARY KEY,
    refresh_hash       TEXT UNIQUE,
    subject            TEXT NOT NULL,
    expires_at         REAL NOT NULL,
    refresh_expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    subject     TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    body        BLOB NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (subject, method, path, key)
);
"""


def _digest(secret: str) -> str:
    """Tokens are stored hashed so a copied database file grants nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenGrant:
    subject: str
    access_token: str
    refresh_token: str
    expires_at: float
    refresh_expires_at: float


@dataclass(frozen=True, slots=True)
class IdempotentResponse:
    fingerprint: str
    status: int
    body: bytes


class Store:
    """The dev server's state; `path` is a file name or ":memory:"."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # records

    def insert(self, kind: str, record_id: str, group: str, body: str) -> str:
        """Store a record unless one with that id exists; return the body that is stored."""
        with self._lock:
            self._db.execute(
                "INSERT INTO records (kind, id, grp, body) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (kind, id) DO NOTHING",
                (kind, record_id, group, body),
            )
            row = self._db.execute(
                "SELECT body FROM records WHERE kind = ? AND id = ?", (kind, record_id)
            ).fetchone()
        return str(row[0])

    def get(self, kind: str, record_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM records WHERE kind = ? AND id = ?", (kind, record_id)
            ).fetchone()
        return None if row is None else str(row[0])

    def replace(self, kind: str, record_id: str, body: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE records SET body = ? WHERE kind = ? AND id = ?", (body, kind, record_id)
            )

    def page(
        self, kind: str, group: str | None, after: int, limit: int
    ) -> tuple[list[tuple[int, str]], bool]:
        """Records after sequence number `after`, oldest first, and whether more follow."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body FROM records"
                " WHERE kind = ? AND (? IS NULL OR grp = ?) AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (kind, group, group, after, limit + 1),
            ).fetchall()
        items = [(int(seq), str(body)) for seq, body in rows]
        return items[:limit], len(items) > limit

    # tokens

    def add_tokens(self, grant: TokenGrant) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
                (
                    _digest(grant.access_token),
                    _digest(grant.refresh_token),
                    grant.subject,
                    grant.expires_at,
                    grant.refresh_expires_at,
                ),
            )

    def access_subject(self, access_token: str, now: float) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT subject FROM tokens WHERE access_hash = ? AND expires_at > ?",
                (_digest(access_token), now),
            ).fetchone()
        return None if row is None else str(row[0])

    def use_refresh_token(self, refresh_token: str, now: float) -> str | None:
        """Spend a refresh token (each works once); return its subject if it was valid."""
        digest = _digest(refresh_token)
        with self._lock:
            row = self._db.execute(
                "SELECT subject FROM tokens WHERE refresh_hash = ? AND refresh_expires_at > ?",
                (digest, now),
            ).fetchone()
            self._db.execute(
                "UPDATE tokens SET refresh_hash = NULL WHERE refresh_hash = ?", (digest,)
            )
            self._db.execute(
                "DELETE FROM tokens WHERE expires_at <= ? AND refresh_hash IS NULL", (now,)
            )
        return None if row is None else str(row[0])

    def expire_access_tokens(self, now: float) -> int:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE tokens SET expires_at = ? WHERE expires_at > ?", (now, now)
            )
        return cursor.rowcount

    # idempotency

    def idempotent_response(
        self, ident: tuple[str, str, str, str], not_before: float
    ) -> IdempotentResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, status, body FROM idempotency"
                " WHERE subject = ? AND method = ? AND path = ? AND key = ? AND created_at >= ?",
                (*ident, not_before),
            ).fetchone()
        if row is None:
            return None
        return IdempotentResponse(str(row[0]), int(row[1]), bytes(row[2]))

    def save_idempotent_response(
        self,
        ident: tuple[str, str, str, str],
        response: IdempotentResponse,
        now: float,
        not_before: float,
    ) -> None:
        """Remember a response, dropping the ones whose keys have lapsed."""
        with self._lock:
            self._db.execute("DELETE FROM idempotency WHERE created_at < ?", (not_before,))
            self._db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*ident, response.fingerprint, response.status, response.body, now),
            )
