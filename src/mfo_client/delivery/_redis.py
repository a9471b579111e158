"""The Redis Streams backend of the event store: one outbox shared by many processes.

Layout. Every key starts with the prefix (default `mfo`), so several deployments can share a
Redis, and a test can delete exactly its own keys:

    q:<kind>         a stream per kind, with one consumer group ("workers"): an entry {j: job id}
                     for each job that is ready or leased
    lease:<kind>     entry id -> the lease its holder asked for (ms)
    cursor:<kind>    where the last XAUTOCLAIM scan of the stream stopped
    delayed:<kind>   job ids by due time: retried or released with a delay, out of the stream
    open:<kind>      job ids by queued time, every job neither done nor dead (counts, oldest)
    done:<kind>      job ids by done time, until pruned
    job:<id>         the job: kind, event, attempts, state, stream entry, lease token, owner
    ev:<id>          the event: source, body, raw body, headers, and how many jobs refer to it
    dlv:<n>:<source>:<delivery id>  -> the event it brought (dedupe; n = len(source))
    dk:<n>:<kind>:<key>             -> the flow job that took the key, and when
    dead, deadn      dead job ids in the order they failed; dead letters per kind
    pending, kinds   jobs neither done nor dead (backpressure); the kinds in use

Work. `lease` runs one script: delayed jobs that are due go back into their stream; XAUTOCLAIM
takes entries idle longer than `lease_for` (their holder died or stalled) for the new owner;
XREADGROUP reads new entries (with several kinds it peeks first, so the oldest go out across
kinds). Each leased job gets a new token in its hash, and every settle runs a script that first
checks it: a stale holder's `complete` changes nothing. Settling XACKs and XDELs the entry, so a
stream holds only ready and leased jobs; a retry or release puts the job back as a new entry,
or in `delayed` until it is due. `renew` is an XCLAIM by the holder, which resets the idle time.

Time. A lease's expiry is the server's idle time of its entry, so the clocks of the machines
running workers do not matter for who holds what. Everything else (due times, queued, done and
failed times, the retention) is the store's `clock`, as in the SQLite store: keep the machines'
clocks in sync (NTP) so a delay means the same everywhere. XAUTOCLAIM takes entries idle longer
than the `lease_for` of the worker looking, so the workers of a kind should all use the same
lease time (they do when they share the configuration).

Intake. `accept` is one script: delivery-id dedupe, the cross-source rename of a taken id, the
backpressure check, the flow jobs' dedupe keys and id checks, then the writes (event, forward
job, flow jobs, XADDs). It checks everything before writing, since a script that fails midway is
not rolled back. It returns once Redis executed it, so the 202 means Redis has the event in
memory; what survives a crash of Redis is its persistence's business (AOF `appendfsync always`
or `everysec`), see docs/webhooks.md. With `wait_replicas`, the same connection then sends WAIT,
and too few confirmations fail the call with `StoreUnavailableError`; the event is stored on the
primary then, and a repeat of the delivery is answered as a duplicate, after the same WAIT: the
script makes a write for a duplicate too, so the WAIT covers the original write (the
replication stream is ordered) and an unconfirmed event gets no 2xx on a retry either.

Housekeeping. Nothing expires by itself (the retention is the store's clock, not Redis's TTL):
`prune` sweeps the jobs done longer than `retention` ago, a chunk per script; an event goes
with the last job that refers to it, its delivery id with it. A flow job's dedupe key counts
while its job is pending, and for `retention` after it was taken or its job finished; it goes
with its job, or expires when it stops counting if its dead job is purged earlier. `prune`
also forgets consumers that hold nothing (every worker has a name of its own) and the keys of
kinds with nothing left. Backpressure reads one counter, kept by the scripts.

Differences from SQLite. Many processes share the streams, so `open` releases no leases: those
of a dead process come back once idle for their lease time, not at the next start. `role`
changes nothing. A connection lost after a write was sent leaves its outcome unknown: the call
fails with `StoreUnavailableError` although the write may have happened (a repeated delivery is
then a duplicate). The client never sends a command again by itself (redis-py's `Retry` would
re-run a script Redis already ran: a new event answered as a duplicate, a lease's jobs taken
and not returned); a connection the server closed meanwhile is replaced when the pool hands it
out. The scripts build their keys from the prefix, so Redis Cluster is not supported; Redis 7.0
or later is needed, with `maxmemory-policy noeviction` (`open` checks it): an evicting policy
would drop acknowledged events, dedupe ids and counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Literal

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mfo_client._urls import redact_url, userinfo_needs_encoding
from mfo_client.delivery import _redis_scripts as lua
from mfo_client.delivery._errors import StoreError, StoreFullError, StoreUnavailableError
from mfo_client.delivery._models import (
    FORWARD,
    Accepted,
    DeadLetter,
    FlowJob,
    IncomingEvent,
    JobAccepted,
    Lease,
    OutboxStats,
    flow_kind,
)
from mfo_client.delivery._sqlite_ops import FULL_RETRY_AFTER, MAX_ID_LENGTH
from mfo_client.delivery._store import EventStore

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

DEFAULT_PREFIX: Final = "mfo"
MIN_VERSION: Final = (7, 0)
"""XAUTOCLAIM and exclusive XRANGE came with 6.2, read-only script flags with 7.0."""

DEFAULT_TIMEOUT: Final = 2.5
"""Seconds for connecting and for each call (WAIT's own time added): a stalled Redis then fails
intake with a 503 well before a sender gives up on its request (GitHub waits 10 s), and the
sender retries."""
MAX_CONNECTIONS: Final = 64
"""Connections to Redis per store: as many calls run at once, the others queue for one."""
PROMOTE_BATCH: Final = 256
"""Most due delayed jobs one `lease` moves back into a stream; the rest follow on the next."""
CHUNK: Final = 1000
"""Jobs or dead letters one script of `prune`, `purge_dead` or `replay(None)` handles, so
Redis is never blocked for long (it runs one script at a time)."""
IDLE_CONSUMER_MS: Final = 600_000
"""A consumer holding nothing and idle this long is forgotten by `prune`."""
_UNAVAILABLE_CODES: Final = ("MISCONF", "NOREPLICAS", "MASTERDOWN", "BUSY", "TRYAGAIN")
_SCRIPTS: Final = {
    "accept": lua.ACCEPT,
    "lease": lua.LEASE,
    "renew": lua.RENEW,
    "settle": lua.SETTLE,
    "next_due": lua.NEXT_DUE,
    "stats": lua.STATS,
    "kinds": lua.KINDS,
    "list_dead": lua.LIST_DEAD,
    "get_dead": lua.GET_DEAD,
    "replay": lua.REPLAY,
    "purge": lua.PURGE,
    "prune": lua.PRUNE,
    "tidy": lua.TIDY,
}


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _text(value: bytes) -> str:
    return value.decode("utf-8")


def _kinds(kinds: Sequence[str]) -> list[str]:
    # A str is a Sequence[str] too, and would silently match no kind at all.
    if isinstance(kinds, str):
        raise TypeError(
            f"kinds must be a list of kinds, e.g. [{kinds!r}], not the string {kinds!r}"
        )
    return list(dict.fromkeys(kinds))


def _renamed(item: IncomingEvent) -> str:
    """The id an event takes when another source already used its id."""
    renamed = f"{item.source}:{item.id}"
    if len(renamed) > MAX_ID_LENGTH:  # ids are also Idempotency-Keys: 255 at most
        renamed = f"{item.source}:{hashlib.sha256(item.id.encode()).hexdigest()}"
    return renamed


def _dead_letters(reply: list[Any]) -> list[DeadLetter]:
    return [
        DeadLetter(
            id=_text(reply[i]),
            source=_text(reply[i + 1]),
            event=json.loads(reply[i + 2]),
            attempts=int(reply[i + 3]),
            last_error=_text(reply[i + 4]),
            failed_at=float(reply[i + 5]),
            received_at=float(reply[i + 6]),
            raw_body=bytes(reply[i + 7]),
            kind=_text(reply[i + 8]),
            event_id=_text(reply[i + 9]),
        )
        for i in range(0, len(reply), 10)
    ]


class RedisStore(EventStore):
    """The event store in Redis Streams; see the module docstring for the design.

    `url` is a redis://, rediss:// or unix:// URL, `prefix` starts every key, `max_pending`
    bounds the jobs not yet done (backpressure), `retention` is how long finished jobs, their
    events and the dedupe ids and keys are kept (seconds), `clock` gives unix seconds (tests
    inject one), `wait_replicas` replicas must confirm each accepted event within
    `wait_timeout` seconds, and `timeout` bounds connecting and each call.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_pending: int = 100_000,
        retention: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        role: Literal["serve", "admin"] = "serve",
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not prefix or any(c in prefix for c in "*?[]: \t\r\n"):
            raise ValueError(
                f"the key prefix must be non-empty, without spaces, ':' or glob characters "
                f"(*?[]), not {prefix!r} (the store puts a ':' after it, so the keys of "
                "prefixes mfo and mfo:ev would mix)"
            )
        if userinfo_needs_encoding(url):
            raise ValueError(
                f"the user or password of the Redis URL {redact_url(url)} holds a '/', '?' or "
                "'#', which would end the host part: percent-encode them (%2F, %3F, %23)"
            )
        if role not in ("serve", "admin"):
            raise ValueError(f"role must be 'serve' or 'admin', not {role!r}")
        if wait_replicas < 0:
            raise ValueError(f"wait_replicas must be 0 or more, not {wait_replicas}")
        if wait_replicas and wait_timeout <= 0:
            raise ValueError(f"wait_timeout must be above 0 s, not {wait_timeout}")
        self._url = url
        self._where = redact_url(url)
        self._prefix = prefix
        self._max_pending = max_pending
        self._retention = retention
        self._clock = clock
        self._wait_replicas = wait_replicas
        self._wait_ms = max(1, math.ceil(wait_timeout * 1000))
        self._timeout = timeout
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._busy = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._lease_ms: dict[str, int] = {}
        """Per kind, the lease time this process last leased with: `next_due_in` reports a
        lost lease as due when this process's own XAUTOCLAIM would take it, never earlier."""

    @property
    def url(self) -> str:
        """The Redis URL, its password masked."""
        return self._where

    @property
    def prefix(self) -> str:
        return self._prefix

    async def __aenter__(self) -> RedisStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def idle_poll(self) -> float:
        """Listeners in other processes cannot wake this one; a look costs one small script."""
        return 0.5

    async def open(self) -> None:
        if self._client is not None:
            raise StoreError(f"the event store at {self._where} is already open")
        wait = self._wait_ms / 1000 if self._wait_replicas else 0.0
        try:
            # Calls beyond MAX_CONNECTIONS wait for a free connection instead of failing.
            pool = BlockingConnectionPool.from_url(
                self._url,
                max_connections=MAX_CONNECTIONS,
                timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                socket_timeout=self._timeout + wait,
                # Never send a command again: its first send may have run (see the docstring).
                # redis-py uses one Retry for connecting and for commands, so none for either.
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError:
            # Not the parser's text: it may quote a piece of the password.
            raise StoreError(
                f"store.url {self._where} is not a usable Redis URL: check its host, port and "
                "database, and percent-encode a '/', '?' or '#' in the password"
            ) from None
        client = Redis(connection_pool=pool)
        try:
            info = await client.info("server")
            version = str(info.get("redis_version", "0"))
            if tuple(int(p) for p in version.split(".")[:2]) < MIN_VERSION:
                raise StoreError(
                    f"Redis at {self._where} is version {version}; the event store needs "
                    f"{'.'.join(map(str, MIN_VERSION))} or later (streams with XAUTOCLAIM)"
                )
            # INFO, not CONFIG GET: managed Redis services often disable CONFIG.
            policy = str((await client.info("memory")).get("maxmemory_policy", "not reported"))
            if policy != "noeviction":
                raise StoreError(
                    f"Redis at {self._where} has maxmemory-policy {policy}: when its memory "
                    "is full it would delete keys, acknowledged events and their dedupe ids "
                    "among them. The event store needs noeviction (a full Redis then refuses "
                    "writes, and intake answers 503): run CONFIG SET maxmemory-policy "
                    "noeviction and put maxmemory-policy noeviction in redis.conf (on a "
                    "managed Redis, in its parameter settings)"
                )
            scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
            for script in scripts.values():
                await client.script_load(script.script)
        except BaseException as exc:
            await client.aclose(close_connection_pool=True)
            if isinstance(exc, RedisError):
                raise self._error(exc) from exc
            raise
        self._client, self._scripts = client, scripts

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        # New calls are refused from here on; those in progress may finish (for a while).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), self._timeout)
        await client.aclose(close_connection_pool=True)

    # -- calls ------------------------------------------------------------------------------

    def _connected(self) -> Redis:
        if self._client is None:
            raise StoreError(f"the event store at {self._where} is not open; call open() first")
        return self._client

    def _error(self, exc: RedisError) -> StoreError:
        """The store's error for a Redis one: unavailable when an operator must act."""
        where = self._where
        if isinstance(exc, AuthenticationError | NoPermissionError):
            return StoreUnavailableError(
                f"Redis at {where} refused the user or password of store.url: {exc}"
            )
        if isinstance(exc, BusyLoadingError | RedisConnectionError | RedisTimeoutError):
            return StoreUnavailableError(f"Redis at {where} cannot be reached: {exc}")
        if isinstance(exc, OutOfMemoryError | ReadOnlyError) or (
            isinstance(exc, ResponseError) and str(exc).startswith(_UNAVAILABLE_CODES)
        ):
            return StoreUnavailableError(f"Redis at {where} refuses writes: {exc}")
        return StoreError(f"Redis at {where} failed: {exc}")

    @contextlib.contextmanager
    def _call(self) -> Iterator[Redis]:
        """The client for one call, counted so `close` can let the call finish."""
        client = self._connected()
        self._busy += 1
        self._drained.clear()
        try:
            yield client
        except RedisError as exc:
            raise self._error(exc) from exc
        finally:
            self._busy -= 1
            if not self._busy:
                self._drained.set()

    async def _run(self, name: str, *args: str | bytes | int | float) -> Any:
        with self._call():
            return await self._scripts[name](args=[self._prefix, *args])

    async def _run_and_wait(self, name: str, *args: str | bytes | int | float) -> Any:
        """Run a script, then WAIT on the same connection for `wait_replicas` replicas."""
        with self._call() as client:
            script = self._scripts[name]
            for _ in range(2):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.evalsha(script.sha, 0, self._prefix, *args)
                    pipe.wait(self._wait_replicas, self._wait_ms)
                    reply, confirmed = await pipe.execute(raise_on_error=False)
                if not isinstance(reply, NoScriptError):
                    break
                await client.script_load(script.script)  # the server restarted meanwhile
        if isinstance(reply, RedisError):
            raise self._error(reply) from reply
        if isinstance(confirmed, RedisError):
            raise self._error(confirmed) from confirmed
        # A duplicate counts too: its script wrote after the original, so the replicas that
        # confirm it have the original (a retry of an unconfirmed event gets no 2xx either).
        if reply[0] in (b"ok", b"dup") and confirmed < self._wait_replicas:
            raise StoreUnavailableError(
                f"only {confirmed} of the {self._wait_replicas} replicas of Redis at "
                f"{self._where} confirmed the event within {self._wait_ms} ms "
                "(store.wait_replicas, store.wait_timeout); it is on the primary, and a "
                "repeat of the delivery gets a 2xx once the replicas confirm it"
            )
        return reply

    # -- intake -----------------------------------------------------------------------------

    async def accept(self, item: IncomingEvent, jobs: Sequence[FlowJob] = ()) -> Accepted:
        now = self._clock()
        args: list[str | bytes | int | float] = [
            repr(now),
            repr(now - self._retention),
            self._max_pending,
            FORWARD,
            item.source,
            "0" if item.delivery_id is None else "1",
            item.delivery_id or "",
            item.id,
            _renamed(item),
            f"{item.source}:{uuid.uuid4()}",  # only if another source chose "<source>:<id>"
            _dump(item.event),
            item.raw_body,
            _dump(item.headers),
            repr(item.received_at),
        ]
        for job in jobs:
            key = job.dedupe_key
            args += [job.id, flow_kind(job.trigger), "0" if key is None else "1", key or ""]
        if self._wait_replicas:
            reply = await self._run_and_wait("accept", *args)
        else:
            reply = await self._run("accept", *args)
        status = reply[0]
        if status == b"dup":  # its jobs were settled when it was first accepted
            return Accepted(id=_text(reply[1]), duplicate=True)
        if status == b"full":
            raise StoreFullError(
                f"the outbox holds {_text(reply[1])} jobs not yet done (forwards and flow "
                "runs), its limit (max_pending); new events are refused until the work "
                "catches up",
                retry_after=FULL_RETRY_AFTER,
            )
        if status == b"taken":
            raise StoreError(
                f"the flow job id {_text(reply[1])!r} ({_text(reply[2])}) is already taken by "
                "another job or event in the store; give every flow run an id of its own "
                "(a UUID); nothing was stored"
            )
        outcomes = reply[2:]
        return Accepted(
            id=_text(reply[1]),
            duplicate=False,
            jobs=tuple(
                JobAccepted(trigger=job.trigger, id=_text(job_id), duplicate=dup == b"1")
                for job, job_id, dup in zip(jobs, outcomes[::2], outcomes[1::2], strict=True)
            ),
        )

    # -- work -------------------------------------------------------------------------------

    async def lease(
        self, owner: str, limit: int, lease_for: float, kinds: Sequence[str] = (FORWARD,)
    ) -> list[Lease]:
        wanted = _kinds(kinds)
        if limit <= 0 or not wanted:
            return []
        lease_ms = max(1, math.ceil(lease_for * 1000))
        for kind in wanted:
            self._lease_ms[kind] = lease_ms
        reply = await self._run(
            "lease",
            repr(self._clock()),
            owner,
            limit,
            lease_ms,
            uuid.uuid4().hex,
            max(limit, PROMOTE_BATCH),
            *wanted,
        )
        return [
            Lease(
                id=_text(reply[i]),
                kind=_text(reply[i + 1]),
                event_id=_text(reply[i + 2]),
                event=json.loads(reply[i + 3]),
                attempts=int(reply[i + 4]),
                token=_text(reply[i + 5]),
                source=_text(reply[i + 6]),
            )
            for i in range(0, len(reply), 7)
        ]

    async def renew(self, lease: Lease, lease_for: float) -> bool:
        lease_ms = max(1, math.ceil(lease_for * 1000))
        self._lease_ms[lease.kind] = lease_ms
        return bool(await self._run("renew", lease.id, lease.token, lease_ms))

    async def _settle(self, lease: Lease, mode: str, delay: float = 0.0, error: str = "") -> None:
        now = self._clock()
        await self._run("settle", lease.id, lease.token, mode, repr(now), repr(now + delay), error)

    async def complete(self, lease: Lease) -> None:
        await self._settle(lease, "complete")

    async def retry_later(self, lease: Lease, error: str, delay: float) -> None:
        await self._settle(lease, "retry", delay, error)

    async def release(self, lease: Lease, delay: float = 0.0) -> None:
        await self._settle(lease, "release", delay)

    async def dead_letter(self, lease: Lease, error: str) -> None:
        await self._settle(lease, "dead", 0.0, error)

    async def next_due_in(self, kinds: Sequence[str] = (FORWARD,)) -> float | None:
        wanted = _kinds(kinds)
        if not wanted:
            return None
        pairs = [arg for kind in wanted for arg in (kind, str(self._lease_ms.get(kind, "")))]
        ready, left_ms, due_at = await self._run("next_due", *pairs)
        if ready:
            return 0.0
        waits = [] if left_ms is None else [max(0.0, left_ms / 1000)]
        if due_at is not None:
            waits.append(max(0.0, float(due_at) - self._clock()))
        return min(waits) if waits else None

    # -- looking in -------------------------------------------------------------------------

    async def stats(self, kinds: Sequence[str] | None = (FORWARD,)) -> OutboxStats:
        wanted = [] if kinds is None else _kinds(kinds)
        open_, in_flight, done, dead, oldest = await self._run(
            "stats", "1" if kinds is None else "0", *wanted
        )
        now = self._clock()
        return OutboxStats(
            pending=open_ - in_flight,
            in_flight=in_flight,
            delivered=done,
            dead=dead,
            oldest_pending_age=None if oldest is None else max(0.0, now - float(oldest)),
        )

    async def kinds(self) -> list[str]:
        return sorted(_text(kind) for kind in await self._run("kinds"))

    async def list_dead(
        self, limit: int = 100, after: str | None = None, kinds: Sequence[str] | None = None
    ) -> list[DeadLetter]:
        wanted = [] if kinds is None else _kinds(kinds)
        if limit <= 0:
            return []
        reply = await self._run(
            "list_dead", limit, after or "", "1" if kinds is None else "0", *wanted
        )
        if reply[0] == b"gone":
            raise StoreError(
                f"no dead letter {after!r} to continue after: it was replayed or purged "
                "meanwhile; list again from the start"
            )
        return _dead_letters(reply[1:])

    async def get_dead(self, id: str) -> DeadLetter | None:
        letters = _dead_letters(await self._run("get_dead", id))
        return letters[0] if letters else None

    # -- dead letters and housekeeping ------------------------------------------------------

    async def replay(self, ids: Sequence[str] | None) -> int:
        if ids is not None:
            if not ids:
                return 0
            n, _ = await self._run("replay", repr(self._clock()), "0", 0, *ids)
            return int(n)
        replayed = 0
        while True:
            n, looked = await self._run("replay", repr(self._clock()), "1", CHUNK)
            replayed += int(n)
            if int(looked) < CHUNK:
                return replayed

    async def purge_dead(self, older_than: float | None) -> int:
        now = self._clock()
        before = "inf" if older_than is None else repr(now - older_than)
        key_cutoff = repr(now - self._retention)
        purged, after = 0, "0"
        while True:
            n, last, looked = await self._run("purge", key_cutoff, before, after, CHUNK)
            purged += int(n)
            after = _text(last) if isinstance(last, bytes) else str(last)
            if int(looked) < CHUNK:
                return purged

    async def prune(self) -> int:
        before = repr(self._clock() - self._retention)
        pruned = 0
        while True:
            jobs, events = await self._run("prune", before, CHUNK)
            pruned += int(events)
            if int(jobs) < CHUNK:
                break
        await self._run("tidy", IDLE_CONSUMER_MS)
        return pruned

    async def healthy(self) -> bool:
        if self._client is None:
            return False
        try:
            with self._call() as client:
                # A write, so a replica, a full memory or a failing disk (MISCONF) show too.
                await client.set(f"{self._prefix}:health", repr(self._clock()), px=60_000)
        except StoreError:
            return False
        return True
