"""Scale-out: intake and forwarding of listeners and workers on Redis, next to SQLite, in one run.

What runs. Every process that works during a measurement is a busy process: the load generator
(this process) or the sink, each listener or worker, and Redis. Each gets a core of its own with
`taskset` (this process pins itself), so they never compete for a core and each one's CPU time
can be read apart (/proc/<pid>/stat; getrusage for this process). A setup that needs more busy
processes than the cores this process may use is not run: it is printed as skipped, with how
many cores it needs. `--shared-cores` runs those too, placing the processes on the cores in
turn; their rows are marked `shared` and the share of each core kept busy is printed, since
their events/s then shows the machine as much as the product (their CPU per event stays
meaningful). SQLite setups always run on cores of their own.

Redis. By default a private `redis-server` on a free port, started by this script with
`appendonly yes, appendfsync everysec` (the persistence docs/deployment.md recommends) in a
temporary directory and pinned like the others: its CPU is then ours alone, which a Redis
shared with other clients cannot give (it includes the AOF rewrites Redis forks now and then,
counted when they end). `--redis-url` uses an existing Redis instead (its CPU is
read from the pid `INFO server` gives, when that process is visible here; it is not pinned).
Every setup writes under a random key prefix of its own and deletes exactly those keys after.

Intake. The same signed GitHub `push` body as bench/intake.py (own X-GitHub-Delivery per
request) at --concurrency in flight, spread evenly over the listeners, from a minimal HTTP/1.1
client on asyncio streams (one keep-alive connection per request in flight): httpx costs about
as much CPU per request as the listener itself, and one core of it could not keep two listeners
busy. Setups: `mfo serve --no-workers` on SQLite (`fsync: normal`), and 1 and 2 listeners
(`mfo serve --no-workers`) on Redis. After --warmup requests, --requests are timed: events/s is
202s per second; CPU s/1k is the CPU seconds per 1,000 events of the listeners (together), of
Redis and of the load generator; "busy" is that CPU times events/s (the share of its core each
process kept busy; for listeners, the mean of them). Each store must hold exactly the events
that got a 202.

Forwarding. Per setup, a fresh store is filled with --events events by the listener app itself
(mfo_client.service.Service without workers, driven in this process through
httpx.ASGITransport: the events are what a listener stores, and the fill costs no extra busy
process). Then a sink starts: a bare Starlette app on uvicorn (run by this script) answering
POST /api/events with 202 and an event receipt, and recording each Idempotency-Key. It is used
instead of `mfo dev-server`, which validates and commits every event to SQLite for about 0.8 ms
of CPU (bench/intake.py): on one core it would cap the run near 1,200 events/s, within reach of
two workers, where the sink spends about 0.3 ms. Then the senders start: `mfo serve` with its
forwarders over the SQLite file (the single process), or K `mfo worker`s on Redis (K from
--workers), all with `delivery.concurrency: 4`. The sink holds every request until all senders
are up, then opens: events/s is N over the time from opening to the last answer, so start-up is
left out for all setups alike. CPU s/1k is per 1,000 events over that window, for the senders
(together), the sink and Redis. Every filled event must reach the sink exactly once (each id
once, no other id), and the store must count all N delivered, none pending, in flight or dead.

Ratios (`x sqlite`) divide by the SQLite setup of the same phase measured in the same run;
events/s is the median over --rounds, and rounds are interleaved (each round runs every setup
in turn). `machine_busy` (the share of all cores busy over half a second) is taken before every
measurement; above 10% something else competed for the cores, and the row is marked `!`.
The exit status is 1 if any check failed.

    .venv/bin/python bench/scale.py                    (1 minute on 2 cores, 3.5 on 6 or more)
    .venv/bin/python bench/scale.py --rounds 1 --events 2000 --requests 1000
    .venv/bin/python bench/scale.py --shared-cores     (also the setups that do not fit: 3.5)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from _common import ServerProcess, exit_with, machine_busy, own_cpu, started
from intake import HOST, INTAKE_PATH, SECRET, payload, signed_headers

if TYPE_CHECKING:
    from mfo_client.delivery import RedisStore, SQLiteStore

DEV_TOKEN = "bench-token"
BUSY_BEFORE = 0.1
"""Above this share of all cores busy before a measurement, something else competes."""
LOAD_BOUND = 0.9
"""Above this share of its core busy, the load generator, not the listeners, sets the pace."""
READY_TIMEOUT = 30.0
STALL_TIMEOUT = 30.0
"""Give the forwarding up when the sink has answered no new event for this long."""
POLL_EVERY = 0.05
FILL_CONCURRENCY = 32
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LISTENING = re.compile(r"listening on (http://\S+?):?\s")
_WORKER_READY = re.compile(r"mfo worker forwarding to ")
_SERVE_READY = re.compile(r"mfo serve listening on ")


# -- setups and cores ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One configuration of one phase: a backend and how many listeners or workers."""

    phase: str
    """"intake" or "forwarding"."""
    backend: str
    """"sqlite" or "redis"."""
    count: int
    """Listeners (intake) or workers (forwarding); 1 for SQLite, its single process."""

    @property
    def name(self) -> str:
        if self.backend == "sqlite":
            return "sqlite, mfo serve" if self.phase == "forwarding" else "sqlite, 1 listener"
        what = "listener" if self.phase == "intake" else "worker"
        return f"redis, {self.count} {what}{'s' if self.count > 1 else ''}"

    def roles(self) -> list[str]:
        """Its busy processes, in the order they get cores: load or sink, servers, Redis."""
        first = "load generator" if self.phase == "intake" else "sink"
        if self.phase == "intake":
            server = "listener"
        else:
            server = "worker" if self.backend == "redis" else "mfo serve"
        redis = ["Redis"] if self.backend == "redis" else []
        return [first, *[server] * self.count, *redis]


@dataclass(frozen=True)
class Placement:
    cores: list[int]
    """A core per role of the setup, in the order of `Setup.roles`."""
    shared: bool

    redis: int | None = None
    """Redis's core; None when the setup does not use Redis."""

    @property
    def first(self) -> int:
        """The load generator's or the sink's core (this process stays there too)."""
        return self.cores[0]

    @property
    def servers(self) -> list[int]:
        """The listeners' or senders' cores."""
        return self.cores[1:-1] if self.redis is not None else self.cores[1:]


def place(setup: Setup, cores: list[int], shared: bool) -> Placement | str:
    """A core for each busy process, or why the setup is not run."""
    roles = setup.roles()
    if len(roles) > len(cores) and not (shared and setup.backend == "redis"):
        # SQLite setups never share: they are the baseline the ratios divide by.
        counted: dict[str, int] = {}
        for role in roles:
            counted[role] = counted.get(role, 0) + 1
        parts = [f"{n} {role}s" if n > 1 else role for role, n in counted.items()]
        return f"{' + '.join(parts)} need {len(roles)} cores; this machine has {len(cores)}" + (
            "" if shared else " (--shared-cores runs it anyway)"
        )
    given = [cores[i % len(cores)] for i in range(len(roles))]
    redis = given[-1] if setup.backend == "redis" else None
    return Placement(given, shared=len(roles) > len(cores), redis=redis)


# -- Redis ---------------------------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """User + system seconds of a process (all threads) and of the children it has reaped:
    fields 14 to 17 of its stat line. For Redis, the children are its AOF rewrites."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(f) for f in fields[11:15]) / _CLOCK_TICKS


def pin(pid: int, core: int) -> None:
    """Move every thread of `pid` (one we started) to `core`."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), {core})


@dataclass
class RedisServer:
    url: str
    version: str
    pid: int | None
    """Whose CPU is Redis's CPU; None when that process is not visible here."""
    own: subprocess.Popen[bytes] | None = None
    """The redis-server this script started (pinned per setup), None for --redis-url."""
    note: str = ""

    def cpu(self) -> float:
        return cpu_of(self.pid) if self.pid is not None else float("nan")

    def pin(self, core: int | None) -> None:
        if self.own is not None and core is not None:
            pin(self.own.pid, core)

    def delete(self, prefix: str) -> None:
        """Delete exactly the keys under `prefix` (SCAN + UNLINK), never anything else."""
        from redis import Redis

        with Redis.from_url(self.url) as client:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _redis_info(url: str) -> dict[str, Any]:
    from redis import Redis

    with Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
        return dict(client.info("server"))


@contextlib.contextmanager
def redis_server(url: str | None, aof: str, workdir: Path, core: int) -> Iterator[RedisServer]:
    """The private redis-server (or the one at `url`) for the whole run."""
    from redis.exceptions import RedisError

    if url is not None:
        try:
            info = _redis_info(url)
        except (RedisError, OSError) as exc:
            raise SystemExit(f"--redis-url {url}: no Redis answers there ({exc})") from None
        pid: int | None = int(info["process_id"])
        comm = ""
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{pid}/comm").read_text()
        if "redis" not in comm:  # another pid namespace (a container): not the one we see
            pid = None
        note = "existing, not pinned by us; its CPU includes every other client's commands"
        yield RedisServer(url, str(info["redis_version"]), pid, note=note)
        return
    binary = shutil.which("redis-server")
    assert binary is not None  # run() skips the Redis setups without it
    port = _free_port()
    persist = ["--appendonly", "no"] if aof == "off" else ["--appendonly", "yes"]
    if aof != "off":
        persist += ["--appendfsync", aof]
    data = workdir / "redis"
    data.mkdir()
    cmd = ["taskset", "-c", str(core), binary, "--bind", HOST, "--port", str(port)]
    cmd += ["--save", "", "--dir", str(data), *persist, "--daemonize", "no"]
    log = workdir / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    server = ServerProcess("redis-server", proc, log)
    url = f"redis://{HOST}:{port}/0"
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                info = _redis_info(url)
                break
            except (RedisError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not start:\n{server.log_tail()}") from None
                time.sleep(0.05)
        note = f"private, appendonly {'no' if aof == 'off' else f'yes, appendfsync {aof}'}"
        yield RedisServer(url, str(info["redis_version"]), proc.pid, own=proc, note=note)
    finally:
        server.stop()


# -- processes -----------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    # MFO_* variables override config keys; a developer's shell must not change what is measured.
    return {k: v for k, v in os.environ.items() if not k.startswith("MFO_")}


@contextlib.contextmanager
def spawned(name: str, cmd: list[str], *, core: int, workdir: Path) -> Iterator[ServerProcess]:
    """Run `cmd` pinned to `core` until the block ends (`wait_printed` waits for its start)."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", str(core), *cmd],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            cwd=workdir,
            env=_child_env(),
            start_new_session=True,
        )
    server = ServerProcess(name, proc, log)
    try:
        yield server
    finally:
        server.stop()


def wait_printed(servers: list[ServerProcess], ready: re.Pattern[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = list(servers)
    while waiting:
        for server in list(waiting):
            if ready.search(server.log.read_text(errors="replace")):
                waiting.remove(server)
            elif server.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"\n{server.name} did not start:\n{server.log_tail()}")
        time.sleep(0.02)


def exited_ok(server: ServerProcess) -> str:
    """'' if it stopped cleanly (0, or the SIGTERM uvicorn re-raises), else what happened."""
    if server.proc.returncode in (0, -signal.SIGTERM):
        return ""
    return f"{server.name} exited {server.proc.returncode}:\n{server.log_tail()}"


def write_config(
    workdir: Path, tag: str, store: dict[str, Any], base_url: str, log_level: str
) -> Path:
    config = {
        "client": {"base_url": f"{base_url}/api", "auth_token": DEV_TOKEN},
        "webhook_listener": {"host": HOST, "port": 0, "path": INTAKE_PATH, "secret_key": SECRET},
        "store": store,
        "delivery": {"concurrency": 4},
        "logging": {"level": log_level},
    }
    path = workdir / f"{tag}.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


@dataclass
class Store:
    """A fresh store for one setup: an SQLite file, or a key prefix in the Redis."""

    settings: dict[str, Any]
    redis: RedisServer | None

    @classmethod
    def fresh(cls, backend: str, workdir: Path, tag: str, redis: RedisServer | None) -> Store:
        if backend == "sqlite":
            return cls({"path": str(workdir / f"{tag}.db"), "fsync": "normal"}, None)
        assert redis is not None
        prefix = f"bench-scale-{uuid.uuid4().hex[:8]}-{tag}"
        return cls({"backend": "redis", "url": redis.url, "prefix": prefix}, redis)

    def open(self) -> SQLiteStore | RedisStore:
        from mfo_client.delivery import RedisStore, SQLiteStore

        if self.redis is None:
            return SQLiteStore(Path(self.settings["path"]), role="admin")
        return RedisStore(self.redis.url, prefix=self.settings["prefix"], role="admin")

    async def counts(self) -> tuple[int, int, int, int]:
        """(delivered, pending, in flight, dead) of its forward jobs."""
        async with self.open() as store:
            stats = await store.stats()
        return stats.delivered, stats.pending, stats.in_flight, stats.dead

    def drop(self) -> None:
        if self.redis is not None:
            self.redis.delete(self.settings["prefix"])


# -- the load generator --------------------------------------------------------------------------


@dataclass
class Tally:
    accepted: int = 0
    failed: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + 1


class Connection:
    """One keep-alive HTTP/1.1 connection posting the signed body: about 0.05 ms of CPU per
    request, where an httpx client spends the better part of a millisecond."""

    def __init__(self, url: str, body: bytes) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or HOST, parts.port or 80
        headers = signed_headers(body) | {"Host": f"{self.host}:{self.port}"}
        headers["Content-Length"] = str(len(body))
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = f"POST {INTAKE_PATH} HTTP/1.1\r\n{lines}".encode()
        self.body = body
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, delivery: str) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(
            b"%sX-GitHub-Delivery: %s\r\n\r\n%s" % (self.head, delivery.encode(), self.body)
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            found = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            answer = await reader.readexactly(int(found.group(1))) if found else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        if found is None or b"\r\nconnection: close" in head.lower():
            await self.close()
        return int(head[9:12]), answer

    async def close(self) -> None:
        if self.streams is not None:
            writer = self.streams[1]
            self.streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def drive(connections: list[Connection], total: int, tally: Tally, run: str) -> float:
    """Send `total` requests over `connections` (one in flight on each); elapsed seconds."""
    remaining = total

    async def worker(connection: Connection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                status, _ = await connection.post(f"{run}-{uuid.uuid4().hex}")
            except (OSError, asyncio.IncompleteReadError) as exc:
                tally.fail(type(exc).__name__)
                continue
            if status == 202:
                tally.accepted += 1
            else:
                tally.fail(f"HTTP {status}")

    begin = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    return time.perf_counter() - begin


# -- intake --------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One setup measured once."""

    rate: float
    """Events per second."""
    server_cpu: float
    """CPU seconds per 1,000 events of the listeners or senders, all together."""
    redis_cpu: float
    other_cpu: float
    """Of the load generator (intake) or the sink (forwarding)."""
    busy_before: float
    """`machine_busy()` just before the measurement."""
    check: str = ""
    """What went wrong; empty if every event was where it belongs."""


async def load(
    urls: list[str],
    body: bytes,
    args: argparse.Namespace,
    cpu: Callable[[], tuple[float, ...]],
    tally: Tally,
) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    """Warm-up, then the timed requests; (elapsed, CPU before, CPU after) of the processes."""
    connections = [Connection(urls[i % len(urls)], body) for i in range(args.concurrency)]
    try:
        await drive(connections, args.warmup, tally, "warmup")
        before = cpu()
        elapsed = await drive(connections, args.requests, tally, "timed")
        return elapsed, before, cpu()
    finally:
        for connection in connections:
            await connection.close()


def intake_once(
    setup: Setup,
    where: Placement,
    args: argparse.Namespace,
    body: bytes,
    workdir: Path,
    redis: RedisServer | None,
    tag: str,
) -> Sample:
    os.sched_setaffinity(0, {where.first})
    store = Store.fresh(setup.backend, workdir, tag, redis)
    config = write_config(workdir, tag, store.settings, "http://127.0.0.1:9", args.log_level)
    cmd = [sys.executable, "-m", "mfo_client", "serve", "--config", str(config), "--no-workers"]
    if redis is not None and where.redis is not None:
        redis.pin(where.redis)
    tally = Tally()
    try:
        with contextlib.ExitStack() as stack:
            listeners = [
                stack.enter_context(
                    started(
                        f"{tag}-{n}",
                        cmd,
                        core=core,
                        workdir=workdir,
                        announce=_LISTENING,
                        env=_child_env(),
                    )
                )
                for n, core in enumerate(where.servers)
            ]
            busy = machine_busy()

            def cpu() -> tuple[float, ...]:
                redis_cpu = redis.cpu() if redis is not None and where.redis is not None else 0.0
                return (sum(s.cpu_seconds() for s in listeners), redis_cpu, own_cpu())

            elapsed, before, after = asyncio.run(
                load([s.url for s in listeners], body, args, cpu, tally)
            )
        problems = [p for p in map(exited_ok, listeners) if p]
        delivered, pending, in_flight, dead = asyncio.run(store.counts())
    finally:
        store.drop()
    stored = delivered + pending + in_flight + dead
    if tally.failed:
        problems.append(f"answers other than 202: {tally.failed}")
    if stored != tally.accepted:
        problems.append(f"{tally.accepted} answered 202 but the store holds {stored}")
    per_1k = 1000 / args.requests
    server_cpu, redis_cpu, load_cpu = ((a - b) * per_1k for a, b in zip(after, before, strict=True))
    return Sample(
        args.requests / elapsed, server_cpu, redis_cpu, load_cpu, busy, "; ".join(problems)
    )


# -- forwarding ----------------------------------------------------------------------------------


def serve_sink() -> None:
    """The sink (`--serve-sink`, its own process): POST /api/events answers 202 with a receipt
    once the gate is open (POST /_open), and counts each Idempotency-Key."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from mfo_client._net import bind_socket, url_for

    gate = asyncio.Event()
    seen: dict[str, int] = {}
    times: dict[str, float] = {"opened": 0.0, "last": 0.0}

    async def events(request: Request) -> Response:
        await request.body()
        key = request.headers.get("idempotency-key", "")
        if not gate.is_set():
            await gate.wait()
        seen[key] = seen.get(key, 0) + 1
        times["last"] = time.monotonic()
        receipt = {"id": key, "status": "accepted", "received_at": datetime.now(UTC).isoformat()}
        return JSONResponse(receipt, status_code=202)

    async def open_gate(_: Request) -> Response:
        times["opened"] = time.monotonic()
        gate.set()
        return JSONResponse({"opened": True})

    async def stats(_: Request) -> Response:
        return JSONResponse({"answered": sum(seen.values())})

    async def report(_: Request) -> Response:
        return JSONResponse({**times, "seen": seen})

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/api/events", events, methods=["POST"]),
        Route("/_open", open_gate, methods=["POST"]),
        Route("/_stats", stats),
        Route("/_report", report),
        Route("/healthz", healthz),
    ]
    sock = bind_socket(HOST, 0)
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=routes),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=15,
        )
    )
    print(f"sink listening on {url_for(HOST, sock.getsockname()[1])}", file=sys.stderr)
    sys.stderr.flush()
    server.run(sockets=[sock])


async def fill(config_file: Path, body: bytes, total: int) -> tuple[list[str], Tally]:
    """`total` signed webhooks through the listener app itself, in this process; the ids."""
    from mfo_client.config import Config
    from mfo_client.service import Service

    service = Service(Config.from_file(config_file, env={}), workers=False)
    tally, ids, remaining = Tally(), list[str](), total
    headers = signed_headers(body)
    await service.start()
    try:
        transport = httpx.ASGITransport(app=service.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fill") as client:

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    delivery = {"X-GitHub-Delivery": f"fill-{uuid.uuid4().hex}"}
                    answer = await client.post(
                        INTAKE_PATH, content=body, headers=headers | delivery
                    )
                    if answer.status_code == 202:
                        tally.accepted += 1
                        ids.append(answer.json()["id"])
                    else:
                        tally.fail(f"HTTP {answer.status_code}")

            await asyncio.gather(*(worker() for _ in range(FILL_CONCURRENCY)))
    finally:
        await service.stop()
    return ids, tally


async def watch(sink: ServerProcess, total: int, senders: list[ServerProcess]) -> None:
    """Poll the sink until it answered `total` events; stop if the senders stall or die."""
    async with httpx.AsyncClient(base_url=sink.url, timeout=10, trust_env=False) as client:
        seen, moved = -1, time.monotonic()
        while True:
            count = (await client.get("/_stats")).json()["answered"]
            if count >= total:
                return
            if count != seen:
                seen, moved = count, time.monotonic()
            elif time.monotonic() - moved > STALL_TIMEOUT or any(
                s.proc.poll() is not None for s in senders
            ):
                tails = "\n".join(s.log_tail(5) for s in senders)
                raise SystemExit(f"\nforwarding stopped at {count} of {total} events:\n{tails}")
            await asyncio.sleep(POLL_EVERY)


def forward_once(
    setup: Setup,
    where: Placement,
    args: argparse.Namespace,
    body: bytes,
    workdir: Path,
    redis: RedisServer | None,
    tag: str,
) -> Sample:
    os.sched_setaffinity(0, {where.first})
    if redis is not None and where.redis is not None:
        redis.pin(where.redis)
    store = Store.fresh(setup.backend, workdir, tag, redis)
    sink_cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-sink"]
    try:
        with started(
            f"{tag}-sink",
            sink_cmd,
            core=where.first,
            workdir=workdir,
            announce=_LISTENING,
            env=_child_env(),
        ) as sink:
            config = write_config(workdir, tag, store.settings, sink.url, args.log_level)
            ids, tally = asyncio.run(fill(config, body, args.events))
            if tally.failed or len(set(ids)) != args.events:
                raise SystemExit(f"\nthe store was not filled: {tally}")
            busy = machine_busy()
            if setup.backend == "sqlite":
                cmd = [sys.executable, "-m", "mfo_client", "serve", "--config", str(config)]
                ready = _SERVE_READY
            else:
                cmd = [sys.executable, "-m", "mfo_client", "worker", "--config", str(config)]
                ready = _WORKER_READY
            with contextlib.ExitStack() as stack:
                senders = [
                    stack.enter_context(spawned(f"{tag}-{n}", cmd, core=core, workdir=workdir))
                    for n, core in enumerate(where.servers)
                ]
                wait_printed(senders, ready)

                def cpu() -> tuple[float, float, float]:
                    redis_cpu = redis.cpu() if redis is not None else 0.0
                    return sum(s.cpu_seconds() for s in senders), sink.cpu_seconds(), redis_cpu

                before = cpu()
                httpx.post(f"{sink.url}/_open", timeout=10, trust_env=False).raise_for_status()
                asyncio.run(watch(sink, args.events, senders))
                after = cpu()
            problems = [p for p in map(exited_ok, senders) if p]
            final = httpx.get(f"{sink.url}/_report", timeout=30, trust_env=False).json()
        counts = asyncio.run(store.counts())
    finally:
        store.drop()
    seen: dict[str, int] = final["seen"]
    duplicates = sum(n - 1 for n in seen.values())
    missing = len(set(ids) - set(seen))
    unexpected = len(set(seen) - set(ids))
    if duplicates or missing or unexpected:
        problems.append(
            f"the sink got {duplicates} duplicates, {missing} missing, {unexpected} unexpected ids"
        )
    if counts != (args.events, 0, 0, 0):
        problems.append(
            "the store counts {} delivered, {} pending, {} in flight, {} dead".format(*counts)
        )
    per_1k = 1000 / args.events
    sender_cpu, sink_cpu, redis_cpu = ((a - b) * per_1k for a, b in zip(after, before, strict=True))
    span = final["last"] - final["opened"]
    rate = args.events / span if span > 0 else 0.0
    return Sample(rate, sender_cpu, redis_cpu, sink_cpu, busy, "; ".join(problems))


# -- the run -------------------------------------------------------------------------------------


def setups(args: argparse.Namespace) -> list[Setup]:
    intake = [Setup("intake", "sqlite", 1)]
    intake += [Setup("intake", "redis", n) for n in args.listeners]
    forward = [Setup("forwarding", "sqlite", 1)]
    forward += [Setup("forwarding", "redis", k) for k in args.workers]
    return intake + forward


def _pct(value: float) -> str:
    return "-" if value != value else f"{value:.0%}"  # NaN: Redis does not take part


COLUMNS = {"intake": ("listeners", "load gen"), "forwarding": ("senders", "sink")}


def report(
    phase: str, plans: dict[Setup, Placement | str], samples: dict[Setup, list[Sample]]
) -> None:
    """The table of one phase: medians of rounds, ratio to SQLite, CPU per 1,000 events."""
    servers, other = COLUMNS[phase]
    print(
        f"\n{phase}:\n{'':<37} {'CPU s per 1,000 events':^26}  {'busy (share of a core)':^26}"
        f"\n{'setup':<19} {'events/s':>8} {'x sqlite':>8} {servers:>9} {'Redis':>6}"
        f" {other:>9}  {servers:>9} {'Redis':>6} {other:>9}  {'cores':<11} events/s by round"
    )
    baseline = [
        r.rate
        for s, runs in samples.items()
        if (s.phase, s.backend) == (phase, "sqlite")
        for r in runs
    ]
    base = statistics.median(baseline) if baseline else 0.0
    notes: set[str] = set()
    for setup, where in plans.items():
        if setup.phase != phase:
            continue
        if isinstance(where, str):
            print(f"{setup.name:<19} skipped: {where}")
            continue
        runs = samples[setup]
        rate = statistics.median(r.rate for r in runs)
        server_cpu = statistics.median(r.server_cpu for r in runs)
        other_cpu = statistics.median(r.other_cpu for r in runs)
        uses_redis = setup.backend == "redis"
        redis_cpu = statistics.median(r.redis_cpu for r in runs) if uses_redis else float("nan")
        # The share of its core each process kept busy: CPU seconds per event x events/s.
        busy = (
            server_cpu * rate / 1000 / setup.count,
            redis_cpu * rate / 1000,
            other_cpu * rate / 1000,
        )
        flags = [
            flag
            for flag, on in (
                ("*", phase == "intake" and busy[2] >= LOAD_BOUND),
                ("!", max(r.busy_before for r in runs) >= BUSY_BEFORE),
                (" shared", where.shared),
            )
            if on
        ]
        notes.update(flags)
        marks = "".join(flags)
        redis_text = "-" if redis_cpu != redis_cpu else f"{redis_cpu:.3f}"
        print(
            f"{setup.name:<19} {rate:>8.0f} {rate / base if base else float('nan'):>8.2f}"
            f" {server_cpu:>9.3f} {redis_text:>6} {other_cpu:>9.3f}"
            f"  {_pct(busy[0]):>9} {_pct(busy[1]):>6} {_pct(busy[2]):>9}"
            f"  {','.join(map(str, where.cores)):<11} {' '.join(f'{r.rate:.0f}' for r in runs)}"
            f"{marks}"
        )
        if where.shared:
            shares = [busy[2], *[busy[0]] * setup.count, busy[1]]
            per_core: dict[int, float] = {}
            for core, share in zip(where.cores, shares, strict=True):
                per_core[core] = per_core.get(core, 0.0) + share
            print(
                f"{'':<19} busy per core: "
                + ", ".join(f"core {c} {v:.0%}" for c, v in sorted(per_core.items()))
            )
    print(
        f"{servers}: all of them together; busy: CPU x events/s, the share of its core each"
        f" process kept busy ({servers}: the mean of them)"
    )
    if "*" in notes:
        print(
            f"*: the load generator kept its core >= {LOAD_BOUND:.0%} busy: it, not the"
            " listeners, set the pace"
        )
    if "!" in notes:
        print(f"!: the machine was >= {BUSY_BEFORE:.0%} busy before a measurement: noisy")
    if " shared" in notes:
        print(
            "shared: more busy processes than cores; its events/s shows contention where a core"
            " is near 100%,\n  its CPU s/1k is still the cost per event"
        )


def check(plans: dict[Setup, Placement | str], samples: dict[Setup, list[Sample]]) -> int:
    print("\ncheck (intake: store holds every 202; forwarding: each event at the sink once):")
    status = 0
    for setup, runs in samples.items():
        if isinstance(plans[setup], str):
            continue
        problems = [r.check for r in runs if r.check]
        status = status or (1 if problems else 0)
        print(f"  {setup.phase:<10} {setup.name:<19} {len(runs)} rounds: ", end="")
        print("OK" if not problems else "MISMATCH: " + " | ".join(problems))
    return status


def run(args: argparse.Namespace) -> int:
    cores = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") is None:
        raise SystemExit("taskset is needed to pin the processes to cores (util-linux)")
    body = payload()
    plans = {setup: place(setup, cores, args.shared_cores) for setup in setups(args)}
    if args.redis_url is None and shutil.which("redis-server") is None:
        no_redis = "redis-server is not installed (apt install redis-server), and no --redis-url"
        plans = {s: no_redis if s.backend == "redis" else p for s, p in plans.items()}
    needs_redis = any(s.backend == "redis" and isinstance(p, Placement) for s, p in plans.items())
    start = time.monotonic()
    print(f"mfo scale-out benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"{platform.node()}: {len(cores)} cores for us ({os.cpu_count()} online), Linux"
        f" {platform.release()}, Python {platform.python_version()}; a core per busy process"
        + (" (--shared-cores: in turn when they do not fit)" if args.shared_cores else "")
    )
    print(
        f"intake: {len(body)}-byte signed push, {args.concurrency} in flight, {args.requests}"
        f" timed after {args.warmup}; forwarding: {args.events} events, delivery.concurrency 4"
        f" per sender, to a bare sink; {args.rounds} rounds, median shown"
    )
    with tempfile.TemporaryDirectory(prefix="mfo-scale-bench-") as tmp:
        workdir = Path(tmp)
        with contextlib.ExitStack() as stack:
            redis = None
            if needs_redis:
                redis = stack.enter_context(
                    redis_server(args.redis_url, args.redis_aof, workdir, cores[-1])
                )
                print(f"Redis {redis.version} at {redis.url}: {redis.note}")
            samples: dict[Setup, list[Sample]] = {
                s: [] for s, p in plans.items() if not isinstance(p, str)
            }
            for round_no in range(1, args.rounds + 1):
                print(f"round {round_no}/{args.rounds}:", end="", flush=True)
                for setup, where in plans.items():
                    if isinstance(where, str):
                        continue
                    tag = f"{setup.phase[:3]}-{setup.backend}-{setup.count}-{round_no}"
                    once = intake_once if setup.phase == "intake" else forward_once
                    sample = once(
                        setup,
                        where,
                        args,
                        body,
                        workdir,
                        redis if setup.backend == "redis" else None,
                        tag,
                    )
                    samples[setup].append(sample)
                    busy = " (busy!)" if sample.busy_before >= BUSY_BEFORE else ""
                    print(
                        f" {setup.phase[:3]}/{setup.name.split(', ')[1]}{busy}", end="", flush=True
                    )
                print()
    busiest = max((r.busy_before for runs in samples.values() for r in runs), default=0.0)
    print(f"\ncores busy before the measurements: at most {busiest:.0%}", end="")
    print("  WARNING: other processes competed" if busiest >= BUSY_BEFORE else "")
    report("intake", plans, samples)
    report("forwarding", plans, samples)
    status = check(plans, samples)
    print(f"\ntook {time.monotonic() - start:.0f}s")
    return status


def _counts(text: str) -> list[int]:
    values = [int(part) for part in text.replace(",", " ").split()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("must be positive integers, e.g. 1,2,4")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--requests", type=int, default=3000, help="timed intake requests")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured intake requests first")
    parser.add_argument("--concurrency", type=int, default=64, help="intake requests in flight")
    parser.add_argument("--events", type=int, default=5000, help="events to forward per setup")
    parser.add_argument(
        "--listeners", type=_counts, default=[1, 2], help="listeners on Redis (default 1,2)"
    )
    parser.add_argument(
        "--workers", type=_counts, default=[1, 2, 4], help="workers on Redis (default 1,2,4)"
    )
    parser.add_argument(
        "--shared-cores",
        action="store_true",
        help="also run the Redis setups that need more cores than there are (marked shared)",
    )
    parser.add_argument("--redis-url", help="use this Redis instead of starting a private one")
    parser.add_argument(
        "--redis-aof",
        choices=["off", "everysec", "always"],
        default="everysec",
        help="persistence of the private Redis (default everysec)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging.level of the listeners and workers (default info, their own default)",
    )
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        serve_sink()
        return
    if args.rounds < 1 or args.requests < 100 or args.warmup < 0 or args.concurrency < 1:
        parser.error("--rounds >= 1, --requests >= 100, --warmup >= 0, --concurrency >= 1")
    if args.events < 100:
        parser.error("--events must be at least 100")

    exit_with(lambda: run(args), "interrupted; servers stopped, keys deleted")


if __name__ == "__main__":
    main()
