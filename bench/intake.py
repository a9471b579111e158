"""Webhook intake and forwarding throughput of `mfo serve` against bare baselines, in one run.

What is measured. Three servers, each its own process pinned with `taskset -c` to one core while
this load generator is pinned to the other (one server runs at a time, so no more busy processes
than cores):

  baseline      a bare Starlette app on uvicorn, with the settings `mfo serve` uses (pre-bound
                TCP socket, so TCP_NODELAY is on; no access log; lifespan off), whose endpoint
                reads the body and answers 202 with a small JSON: no verification, no storage
  fsync=normal  `mfo serve --no-workers`, store `fsync: normal` (SQLite WAL, synchronous=NORMAL)
  fsync=full    the same with `fsync: full` (synchronous=FULL: one fsync per group commit)

Each gets the same signed GitHub `push` body (tests/data/github/push.new_branch.json, exact bytes)
at each concurrency from httpx.AsyncClients, one per in-flight request with one keep-alive
connection (a single client pooling 32 connections costs several times the CPU per request),
every request with its own X-GitHub-Delivery id so none is deduplicated, after a warm-up.
`mfo serve` runs with its default logging (one info line per accepted event) and no forwarders,
so only intake is measured: read, verify the HMAC, build the event, commit it to a fresh SQLite
file, answer 202. Rounds are interleaved: every round starts each server afresh, in turn, so slow
drift on the machine touches all three alike.

    .venv/bin/python bench/intake.py                       (defaults: about 2.5 minutes)
    .venv/bin/python bench/intake.py --requests 500 --concurrency 1 8 64 --rounds 5
    .venv/bin/python bench/intake.py --forward-events 0    (intake only)

Reading the table. req/s is the median over rounds; `x base` divides it by the baseline's at the
same concurrency, so it is the share of a bare uvicorn endpoint's throughput left once intake is
durable (1.00 would mean verification and storage are free). p50/p99 are latencies over all
measured requests of all rounds. CPU s/1k is the CPU time (user + system, all threads, from
/proc/<pid>/stat) the server process, and this load generator, spent per 1,000 requests; "busy"
is that CPU times req/s, the share of its core each side kept busy. A row marked * had the load
generator >= 90% busy: httpx set the pace there, not the server, so its ratio understates the
difference and the server CPU column is the fairer comparison. "peak RSS" is the server process's
VmHWM (/proc/<pid>/status) read just before it is stopped, so it covers its whole run: warm-ups
and every concurrency (the same figure on each of its rows), median over rounds. At the end each
store is opened and its events counted: it must hold exactly as many as got a 202.

Forwarding, after the intake rounds: as many rounds again, each of three steps one after the
other so that no two busy processes share a core:

  fill          `mfo serve --no-workers` (fsync=normal, fresh store) on the server core takes
                --forward-events signed pushes as above (the 202s give their event ids); stopped.
  raw httpx     the reference server (`mfo dev-server`, :memory:) on core 0, and this process,
                moved to core 1, posting the same events (the bodies `mfo serve` would send, with
                its bearer token and an Idempotency-Key) from one httpx.AsyncClient, 4 at a time.
  mfo serve     a fresh dev server on core 0 and `mfo serve` WITH its forwarders (default
                `delivery.concurrency: 4`) on core 1 over the filled store, forwarding them all.

events/s is (N - 1) over the time between the first and the last arrival at the dev server (its
`received_at`), for both senders alike, so process start-up is left out; the median of rounds is
shown, and `x raw` divides mfo serve's by raw httpx's. CPU s/1k is per 1,000 events: for raw
httpx over the whole posting, for `mfo serve` over the window between the first poll of the dev
server's /_admin/stats (every 50 ms) that saw an event and the one that saw all (the polls add a
little to the dev server's share). "busy" is again CPU times events/s. Each sender must deliver
every event exactly once: the dev server's POST /api/events must have answered 202 exactly N
times, its event listing must hold exactly the ids the webhooks got, and the store must count all
N delivered.

The numbers come from one machine (core count, disk, kernel and Python as printed) and only
compare the servers with each other; they are not a capacity figure for another host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import platform
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from _common import (
    ServerProcess,
    exit_with,
    machine_busy,
    own_cpu,
    percentile,
    split_cores,
    started,
)

if TYPE_CHECKING:
    from mfo_client.delivery import OutboxStats

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = ROOT / "tests" / "data" / "github" / "push.new_branch.json"
SECRET = "bench-intake-secret"
HOST = "127.0.0.1"
INTAKE_PATH = "/webhook"
LOAD_BOUND = 0.9
"""Above this share of its core busy, the load generator, not the server, sets the pace."""
_LISTENING = re.compile(r"listening on (http://\S+?):?\s")
DEV_TOKEN = "dev-token"
EVENTS_ROUTE = "POST /api/events"
"""The dev server's /_admin/stats key of the event intake."""
POLL_EVERY = 0.05
STALL_TIMEOUT = 30.0
"""Give the forwarding up when the dev server has seen no new event for this long."""


@dataclass(frozen=True)
class Target:
    name: str
    fsync: str | None
    """None for the baseline, else the `store.fsync` of `mfo serve`."""


TARGETS = (
    Target("baseline", None),
    Target("fsync=normal", "normal"),
    Target("fsync=full", "full"),
)


@dataclass
class Sample:
    """One measured round of one server at one concurrency."""

    rps: float
    latencies: list[float]
    server_cpu: float
    """Seconds per 1,000 requests."""
    load_cpu: float


@dataclass
class Tally:
    """What the clients saw of one `mfo serve` process, and what its store held after."""

    accepted: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    stored: int = 0

    def fail(self, reason: str) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + 1


@dataclass
class Delivery:
    """One sender's forwarding run, as the dev server saw it."""

    name: str
    rate: float
    """Events/s between the first and the last arrival at the dev server."""
    sender_cpu: float
    """Seconds per 1,000 events."""
    dev_cpu: float
    sender_rss: float | None
    """Peak RSS in MiB; None for this process (its peak dates from the intake rounds)."""
    dev_rss: float
    arrived: list[str]
    """Event ids the dev server lists, in arrival order."""
    answers: dict[str, int]
    """Its POST /api/events answers by status (and the sender's transport errors)."""
    posted: list[str]
    """Event ids the webhooks of this round got: what must arrive, each once."""
    wall: float | None = None
    """Seconds from spawning `mfo serve` until the dev server had every event."""
    outbox: str = ""
    """What the store counted after `mfo serve` stopped; empty for raw httpx."""
    outbox_ok: bool = True


# -- the payload ---------------------------------------------------------------------------------


def payload() -> bytes:
    """The recorded GitHub push, or a generated one of the same shape and size without it."""
    if PAYLOAD.is_file():
        return PAYLOAD.read_bytes()
    repo = "octo-org/hello-world"
    api = f"https://api.github.com/repos/{repo}"
    user = {"name": "Octo Cat", "email": "octocat@example.com", "username": "octocat"}
    commits = [
        {
            "id": f"{n:040x}",
            "tree_id": f"{n + 100:040x}",
            "distinct": True,
            "message": f"Change {n}: tidy the build scripts and update the changelog",
            "timestamp": "2024-05-01T12:00:00Z",
            "url": f"https://github.com/{repo}/commit/{n:040x}",
            "author": user,
            "committer": user,
            "added": [f"docs/note-{n}.md"],
            "removed": [],
            "modified": ["CHANGELOG.md", "scripts/build.sh"],
        }
        for n in range(1, 4)
    ]
    links: tuple[str, ...] = ("forks", "keys", "collaborators", "teams", "hooks", "events")
    links += ("assignees", "branches", "tags", "blobs", "git_tags", "git_refs", "trees")
    links += ("statuses", "languages", "stargazers", "contributors", "subscribers", "commits")
    links += ("git_commits", "comments", "issue_comment", "contents", "compare", "merges")
    links += ("archive", "downloads", "issues", "pulls", "milestones", "notifications")
    links += ("labels", "releases", "deployments", "issue_events")
    repository: dict[str, object] = {"id": 1296269, "name": "hello-world", "full_name": repo}
    repository.update({f"{link}_url": f"{api}/{link}{{/id}}" for link in links})
    body = {
        "ref": "refs/heads/main",
        "before": f"{0:040x}",
        "after": commits[-1]["id"],
        "repository": repository,
        "pusher": {"name": "octocat", "email": "octocat@example.com"},
        "sender": {"login": "octocat", "id": 583231, "type": "User", "site_admin": False},
        "created": False,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{repo}/compare/{0:012x}...{3:012x}",
        "commits": commits,
        "head_commit": commits[-1],
    }
    return json.dumps(body, indent=2).encode() + b"\n"


def signed_headers(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/bench",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": f"sha256={digest}",
    }


# -- the servers ---------------------------------------------------------------------------------


def serve_baseline() -> None:
    """The baseline server; runs in its own process (`--serve-baseline`)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from mfo_client._net import bind_socket, url_for

    async def intake(request: Request) -> Response:
        await request.body()
        delivery = request.headers.get("x-github-delivery")
        return JSONResponse({"id": delivery, "duplicate": False}, status_code=202)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [Route(INTAKE_PATH, intake, methods=["POST"]), Route("/healthz", healthz)]
    app = Starlette(routes=routes)
    sock = bind_socket(HOST, 0)
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=15
        )
    )
    print(f"baseline listening on {url_for(HOST, sock.getsockname()[1])}", file=sys.stderr)
    sys.stderr.flush()
    server.run(sockets=[sock])


def _child_env() -> dict[str, str]:
    # MFO_* variables override config keys; a developer's shell must not change what is measured.
    return {k: v for k, v in os.environ.items() if not k.startswith("MFO_")}


def command(
    target: Target, store: Path, log_level: str, *, forward_to: str | None = None
) -> list[str]:
    """The command line of `target`; for `mfo serve`, with a config file written for it.

    Without `forward_to`, `mfo serve --no-workers`; with it (a dev server's URL), `mfo serve`
    with its forwarders at their default settings, sending to that server.
    """
    if target.fsync is None:
        return [sys.executable, str(Path(__file__).resolve()), "--serve-baseline"]
    client = (
        {"base_url": "http://127.0.0.1:9/api", "auth_token": "unused"}
        if forward_to is None
        else {"base_url": f"{forward_to}/api", "auth_token": DEV_TOKEN}
    )
    config = {
        "client": client,
        "webhook_listener": {"host": HOST, "port": 0, "path": INTAKE_PATH, "secret_key": SECRET},
        "store": {"path": str(store), "fsync": target.fsync},
        "logging": {"level": log_level},
    }
    suffix = "" if forward_to is None else "-forward"
    config_file = store.with_name(f"{store.stem}{suffix}.yaml")
    config_file.write_text(json.dumps(config, indent=2))  # JSON is YAML
    cmd = [sys.executable, "-m", "mfo_client", "serve", "--config", str(config_file)]
    return cmd if forward_to is not None else [*cmd, "--no-workers"]


def dev_server_command() -> list[str]:
    """The reference MFO server, in memory, on a free port (it prints its URL on stdout)."""
    cmd = [sys.executable, "-m", "mfo_client", "dev-server", "--port", "0"]
    return [*cmd, "--db", ":memory:", "--token", DEV_TOKEN]


# -- the load ------------------------------------------------------------------------------------


async def _drive(
    clients: list[httpx.AsyncClient],
    body: bytes,
    total: int,
    tally: Tally,
    ids: list[str] | None = None,
) -> tuple[float, list[float]]:
    """Send `total` requests, one worker per client; elapsed seconds and each latency.

    With `ids`, the event id of each 202 is appended to it (parsing it costs the load CPU, so
    the measured rounds leave it out)."""
    headers = signed_headers(body)
    latencies: list[float] = []
    remaining = total

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            delivery = {"X-GitHub-Delivery": str(uuid.uuid4())}
            sent = time.perf_counter()
            try:
                response = await client.post(INTAKE_PATH, content=body, headers=headers | delivery)
            except httpx.TransportError as exc:
                tally.fail(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - sent)
            if response.status_code == 202:
                tally.accepted += 1
                if ids is not None:
                    ids.append(response.json()["id"])
            else:
                tally.fail(f"HTTP {response.status_code}")

    begin = time.perf_counter()
    await asyncio.gather(*(worker(client) for client in clients))
    return time.perf_counter() - begin, latencies


async def _clients(
    stack: contextlib.AsyncExitStack, url: str, count: int
) -> list[httpx.AsyncClient]:
    """`count` clients of one keep-alive connection each, closed with `stack`."""
    return [
        await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=url,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                timeout=30,
                trust_env=False,
            )
        )
        for _ in range(count)
    ]


async def measure(
    server: ServerProcess,
    body: bytes,
    concurrencies: list[int],
    requests: int,
    warmup: int,
    tally: Tally,
) -> dict[int, Sample]:
    """One round at each concurrency, each after its own warm-up on fresh connections.

    Each worker has a client of its own with one connection: one client with a pool of 32
    costs several times the CPU per request, and the load generator would be measured instead.
    """
    samples: dict[int, Sample] = {}
    for concurrency in concurrencies:
        async with contextlib.AsyncExitStack() as stack:
            clients = await _clients(stack, server.url, concurrency)
            await _drive(clients, body, warmup, tally)
            server_cpu, load_cpu = server.cpu_seconds(), own_cpu()
            elapsed, latencies = await _drive(clients, body, requests, tally)
            per_1k = 1000 / requests
            samples[concurrency] = Sample(
                rps=requests / elapsed,
                latencies=latencies,
                server_cpu=(server.cpu_seconds() - server_cpu) * per_1k,
                load_cpu=(own_cpu() - load_cpu) * per_1k,
            )
    return samples


async def outbox(path: Path) -> OutboxStats:
    from mfo_client.delivery import SQLiteStore

    async with SQLiteStore(path, role="admin") as store:
        return await store.stats()


async def stored_events(path: Path) -> int:
    stats = await outbox(path)
    return stats.pending + stats.in_flight + stats.delivered + stats.dead


# -- forwarding ----------------------------------------------------------------------------------


async def fill(
    server: ServerProcess, body: bytes, total: int, concurrency: int
) -> tuple[list[str], Tally]:
    """Post `total` signed webhooks as the intake rounds do; the event ids of the 202s."""
    tally, ids = Tally(), list[str]()
    async with contextlib.AsyncExitStack() as stack:
        clients = await _clients(stack, server.url, concurrency)
        await _drive(clients, body, total, tally, ids)
    return ids, tally


def outgoing(store: Path) -> list[tuple[str, bytes]]:
    """(Idempotency-Key, body) of each stored event as the forwarder sends it: the stored event
    validated and dumped as JSON, serialized the way httpx does `json=`, keyed by its work id."""
    from mfo_client.api import Event

    with contextlib.closing(sqlite3.connect(store)) as db:
        rows = db.execute(
            "SELECT w.id, e.body FROM work AS w JOIN events AS e ON e.id = w.event_id"
            " WHERE w.kind = 'forward' ORDER BY w.seq"
        ).fetchall()
    return [
        (
            str(key),
            json.dumps(
                Event.model_validate_json(body).model_dump(mode="json"),
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
            ).encode(),
        )
        for key, body in rows
    ]


async def post_raw(url: str, events: list[tuple[str, bytes]], concurrency: int) -> dict[str, int]:
    """Post `events` from one httpx.AsyncClient, `concurrency` at a time; transport errors."""
    errors: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {DEV_TOKEN}", "Content-Type": "application/json"}
    todo = iter(events)  # shared by the workers: each takes the next event
    async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as client:

        async def worker() -> None:
            for key, content in todo:
                try:
                    await client.post(
                        "/api/events", content=content, headers=headers | {"Idempotency-Key": key}
                    )
                except httpx.TransportError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


async def dev_answers(client: httpx.AsyncClient) -> dict[str, int]:
    """The dev server's answers to POST /api/events so far, by status."""
    response = await client.get("/_admin/stats")
    response.raise_for_status()
    requests: dict[str, dict[str, int]] = response.json()["requests"]
    return requests.get(EVENTS_ROUTE, {})


async def dev_events(url: str) -> tuple[list[str], dict[str, int], float]:
    """What the dev server holds: event ids oldest first, its POST /api/events answers, and the
    seconds from the first event's arrival to the last one's."""
    ids: list[str] = []
    arrivals: list[datetime] = []
    auth = {"Authorization": f"Bearer {DEV_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as client:
        answers = await dev_answers(client)
        cursor: str | None = None
        while True:
            params = {"limit": "1000"} | ({} if cursor is None else {"cursor": cursor})
            response = await client.get("/api/events", params=params, headers=auth)
            response.raise_for_status()
            page = response.json()
            for item in page["items"]:
                ids.append(item["id"])
                arrivals.append(datetime.fromisoformat(item["received_at"]))
            cursor = page["next_cursor"]
            if cursor is None:
                break
    span = (max(arrivals) - min(arrivals)).total_seconds() if arrivals else 0.0
    return ids, answers, span


@dataclass
class Window:
    """CPU seconds each side spent while `events` events arrived at the dev server."""

    events: int
    sender_cpu: float
    dev_cpu: float


async def watch(dev: ServerProcess, sender: ServerProcess, total: int) -> Window:
    """Poll the dev server's stats until it has answered `total` events with 202."""
    async with httpx.AsyncClient(base_url=dev.url, timeout=10, trust_env=False) as client:
        start: tuple[int, float, float] | None = None
        seen, moved = -1, time.monotonic()
        while True:
            count = (await dev_answers(client)).get("202", 0)
            if start is None and count > 0:
                start = (count, sender.cpu_seconds(), dev.cpu_seconds())
            if count >= total:
                if start is None or start[0] >= total:
                    raise SystemExit("\nforwarding was over before the first poll: raise N")
                first, sender_cpu, dev_cpu = start
                return Window(
                    count - first, sender.cpu_seconds() - sender_cpu, dev.cpu_seconds() - dev_cpu
                )
            if count != seen:
                seen, moved = count, time.monotonic()
            elif sender.proc.poll() is not None or time.monotonic() - moved > STALL_TIMEOUT:
                raise SystemExit(
                    f"\nforwarding stopped at {count} of {total} events:\n{sender.log_tail()}"
                )
            await asyncio.sleep(POLL_EVERY)


def _exited_ok(server: ServerProcess) -> None:
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    if server.proc.returncode not in (0, -signal.SIGTERM):
        print(f"\n{server.name} exited {server.proc.returncode}:\n{server.log_tail()}")


def fill_store(
    args: argparse.Namespace, body: bytes, store: Path, core: int | None
) -> list[str] | None:
    """`mfo serve --no-workers` takes --forward-events webhooks into a fresh `store`; the ids."""
    cmd = command(Target("fill", "normal"), store, args.log_level)
    with started(
        f"fill-{store.stem}",
        cmd,
        core=core,
        workdir=store.parent,
        announce=_LISTENING,
        env=_child_env(),
    ) as server:
        posted, tally = asyncio.run(fill(server, body, args.forward_events, max(args.concurrency)))
    _exited_ok(server)
    tally.stored = asyncio.run(stored_events(store))
    if tally.failed or tally.stored != args.forward_events or len(set(posted)) != len(posted):
        print(f"\nthe store was not filled: {tally}")
        return None
    return posted


def raw_run(
    store: Path,
    posted: list[str],
    concurrency: int,
    tag: str,
    server_core: int | None,
    load_core: int | None,
) -> Delivery:
    """A fresh dev server on the load core takes the store's events from this process, moved to
    the server core for the while, posting them with one httpx.AsyncClient."""
    events = outgoing(store)
    with started(
        tag,
        dev_server_command(),
        core=load_core,
        workdir=store.parent,
        announce=_LISTENING,
        env=_child_env(),
    ) as dev:
        if server_core is not None:
            os.sched_setaffinity(0, {server_core})
        try:
            own, dev_cpu = own_cpu(), dev.cpu_seconds()
            errors = asyncio.run(post_raw(dev.url, events, concurrency))
            own, dev_cpu = own_cpu() - own, dev.cpu_seconds() - dev_cpu
        finally:
            if load_core is not None:
                os.sched_setaffinity(0, {load_core})
        dev_rss = dev.peak_rss_mib()  # before the listing below, which holds every event at once
        arrived, answers, span = asyncio.run(dev_events(dev.url))
    _exited_ok(dev)
    per_1k = 1000 / len(events)
    return Delivery(
        "raw httpx",
        rate=(len(arrived) - 1) / span if span else 0.0,
        sender_cpu=own * per_1k,
        dev_cpu=dev_cpu * per_1k,
        sender_rss=None,
        dev_rss=dev_rss,
        arrived=arrived,
        answers=answers | errors,
        posted=posted,
    )


def forward_run(
    args: argparse.Namespace,
    store: Path,
    posted: list[str],
    tag: str,
    server_core: int | None,
    load_core: int | None,
) -> Delivery:
    """A fresh dev server on the load core, then `mfo serve` with its forwarders on the server
    core over the filled `store`, until the dev server has every event."""
    workdir, env = store.parent, _child_env()
    with started(
        f"{tag}-dev",
        dev_server_command(),
        core=load_core,
        workdir=workdir,
        announce=_LISTENING,
        env=env,
    ) as dev:
        cmd = command(Target("forward", "normal"), store, args.log_level, forward_to=dev.url)
        spawned = time.perf_counter()
        with started(
            tag, cmd, core=server_core, workdir=workdir, announce=_LISTENING, env=env
        ) as sender:
            window = asyncio.run(watch(dev, sender, len(posted)))
            wall = time.perf_counter() - spawned
            sender_rss = sender.peak_rss_mib()
        _exited_ok(sender)
        dev_rss = dev.peak_rss_mib()
        arrived, answers, span = asyncio.run(dev_events(dev.url))
    _exited_ok(dev)
    stats = asyncio.run(outbox(store))
    per_1k = 1000 / window.events
    counts = (stats.delivered, stats.pending, stats.in_flight, stats.dead)
    return Delivery(
        "mfo serve",
        rate=(len(arrived) - 1) / span if span else 0.0,
        sender_cpu=window.sender_cpu * per_1k,
        dev_cpu=window.dev_cpu * per_1k,
        sender_rss=sender_rss,
        dev_rss=dev_rss,
        arrived=arrived,
        answers=answers,
        posted=posted,
        wall=wall,
        outbox="store: {} delivered, {} pending, {} in flight, {} dead".format(*counts),
        outbox_ok=counts == (len(posted), 0, 0, 0),
    )


def forwarding(
    args: argparse.Namespace,
    body: bytes,
    workdir: Path,
    server_core: int | None,
    load_core: int | None,
) -> int:
    """Per round: fill a store, post its events raw, then forward them with `mfo serve`; 0 if
    every event arrived exactly once each time."""
    from mfo_client.config._defaults import DELIVERY_CONCURRENCY  # what `mfo serve` will use

    print(
        f"\nforwarding: {args.forward_events} events, {DELIVERY_CONCURRENCY} at a time, to"
        f" `mfo dev-server` (:memory:) on core {load_core} from core {server_core}"
    )
    runs: dict[str, list[Delivery]] = {}
    for round_no in range(1, args.rounds + 1):
        print(f"round {round_no}/{args.rounds}: fill", end="", flush=True)
        store = workdir / f"forward-{round_no}.db"
        posted = fill_store(args, body, store, server_core)
        if posted is None:
            return 1
        print(" raw-httpx", end="", flush=True)
        raw = raw_run(
            store, posted, DELIVERY_CONCURRENCY, f"raw-{round_no}", server_core, load_core
        )
        runs.setdefault(raw.name, []).append(raw)
        print(" mfo-serve", end="", flush=True)
        forwarded = forward_run(args, store, posted, f"forward-{round_no}", server_core, load_core)
        runs.setdefault(forwarded.name, []).append(forwarded)
        print()
    report_forwarding(runs)
    return check_forwarding(runs)


# -- the run -------------------------------------------------------------------------------------


def report(
    samples: dict[tuple[str, int], list[Sample]],
    rss: dict[str, list[float]],
    concurrencies: list[int],
) -> None:
    head = f"{'server':<13} {'conc':>4} {'req/s':>6} {'x base':>6} {'p50 ms':>6} {'p99 ms':>6}"
    print(
        f"\n{head} {'server CPU s/1k':>15} {'load CPU s/1k':>13} {'busy srv/load':>13}"
        f" {'peak RSS MiB':>12}"
    )
    saturated = False
    for concurrency in concurrencies:
        base = statistics.median(s.rps for s in samples[(TARGETS[0].name, concurrency)])
        for target in TARGETS:
            runs = samples[(target.name, concurrency)]
            rps = statistics.median(s.rps for s in runs)
            latencies = [t * 1000 for s in runs for t in s.latencies]
            server_cpu = statistics.median(s.server_cpu for s in runs)
            load_cpu = statistics.median(s.load_cpu for s in runs)
            # The share of its core each side kept busy: CPU seconds per request x requests/s.
            busy_server, busy_load = server_cpu * rps / 1000, load_cpu * rps / 1000
            mark = "*" if busy_load >= LOAD_BOUND else " "
            saturated = saturated or busy_load >= LOAD_BOUND
            print(
                f"{target.name:<13} {concurrency:>4} {rps:>6.0f} {rps / base:>6.2f}"
                f" {percentile(latencies, 50):>6.2f} {percentile(latencies, 99):>6.2f}"
                f" {server_cpu:>15.3f} {load_cpu:>13.3f}"
                f" {busy_server:>7.0%}/{busy_load:>4.0%}{mark}"
                f" {statistics.median(rss[target.name]):>12.1f}"
            )
    if saturated:
        print(
            f"* the load generator kept its core >= {LOAD_BOUND:.0%} busy: that row is bounded by"
            " the client,\n  and its ratio understates the difference; compare server CPU there."
        )
    print("peak RSS: of the server process over its whole run (all concurrencies), median")


def report_forwarding(runs: dict[str, list[Delivery]]) -> None:
    print(
        f"\n{'sender':<10} {'events/s':>8} {'x raw':>6} {'sender CPU s/1k':>15} {'busy':>5}"
        f" {'dev CPU s/1k':>12} {'busy':>5} {'peak RSS MiB sender/dev':>23}  events/s by round"
    )
    base = statistics.median(d.rate for d in runs["raw httpx"])
    for name, deliveries in runs.items():
        rate = statistics.median(d.rate for d in deliveries)
        sender_cpu = statistics.median(d.sender_cpu for d in deliveries)
        dev_cpu = statistics.median(d.dev_cpu for d in deliveries)
        sender_rsses = [d.sender_rss for d in deliveries if d.sender_rss is not None]
        sender_rss = f"{statistics.median(sender_rsses):.1f}" if sender_rsses else "-"
        dev_rss = statistics.median(d.dev_rss for d in deliveries)
        print(
            f"{name:<10} {rate:>8.0f} {rate / base if base else 0:>6.2f}"
            f" {sender_cpu:>15.3f} {sender_cpu * rate / 1000:>5.0%}"
            f" {dev_cpu:>12.3f} {dev_cpu * rate / 1000:>5.0%}"
            f" {sender_rss:>16}/{dev_rss:>6.1f}  {' '.join(f'{d.rate:.0f}' for d in deliveries)}"
        )
    walls = [d.wall for d in runs["mfo serve"] if d.wall is not None]
    print(
        "events/s: (N - 1) over first to last arrival at the dev server, median of rounds;"
        f" mfo serve had them all\n  {statistics.median(walls):.1f}s (median) after being"
        " spawned, start-up included. Sender RSS of raw httpx: this process, not shown."
    )


def check_forwarding(runs: dict[str, list[Delivery]]) -> int:
    """Print whether each sender delivered every posted event exactly once; 0 if all did."""
    print("\nforwarding check (the dev server's events and answers vs. the ids the webhooks got):")
    ok = True
    for name, deliveries in runs.items():
        listed = twice = missing = unexpected = sent = 0
        others: dict[str, int] = {}
        same = True
        for run in deliveries:
            expected, got = set(run.posted), set(run.arrived)
            run_twice = len(run.arrived) - len(got)
            run_missing, run_unexpected = len(expected - got), len(got - expected)
            run_sent = run.answers.get("202", 0)
            run_others = {what: n for what, n in run.answers.items() if what != "202"}
            same = same and not (run_twice or run_missing or run_unexpected or run_others)
            same = same and run_sent == len(run.posted) and run.outbox_ok
            listed, twice, sent = listed + len(run.arrived), twice + run_twice, sent + run_sent
            missing, unexpected = missing + run_missing, unexpected + run_unexpected
            for what, n in run_others.items():
                others[what] = others.get(what, 0) + n
        ok = ok and same
        other = "".join(f", {n} {what}" for what, n in others.items())
        outboxes = "; ".join(d.outbox for d in deliveries if d.outbox)
        print(
            f"  {name:<10} {listed} listed, {twice} twice, {missing} missing,"
            f" {unexpected} unexpected; POST /api/events answered 202 {sent} times{other},"
            f" in {len(deliveries)} rounds: {'OK' if same else 'MISMATCH'}"
        )
        if outboxes:
            print(f"             {outboxes}")
    return 0 if ok else 1


def intake_rounds(
    args: argparse.Namespace, body: bytes, workdir: Path, server_core: int | None
) -> tuple[dict[tuple[str, int], list[Sample]], dict[str, list[float]], dict[str, list[Tally]]]:
    """Every round of every server; samples, peak RSS (MiB) and tallies by server."""
    samples: dict[tuple[str, int], list[Sample]] = {}
    rss: dict[str, list[float]] = {}
    tallies: dict[str, list[Tally]] = {}
    for round_no in range(1, args.rounds + 1):
        print(f"round {round_no}/{args.rounds}:", end="", flush=True)
        for target in TARGETS:
            tally = Tally()
            tag = f"{target.name.replace('=', '-')}-{round_no}"
            store = workdir / f"{tag}.db"
            cmd = command(target, store, args.log_level)
            with started(
                tag,
                cmd,
                core=server_core,
                workdir=workdir,
                announce=_LISTENING,
                env=_child_env(),
            ) as server:
                got = asyncio.run(
                    measure(server, body, args.concurrency, args.requests, args.warmup, tally)
                )
                rss.setdefault(target.name, []).append(server.peak_rss_mib())
            _exited_ok(server)
            for concurrency, sample in got.items():
                samples.setdefault((target.name, concurrency), []).append(sample)
            if target.fsync is not None:
                tally.stored = asyncio.run(stored_events(store))
                tallies.setdefault(target.name, []).append(tally)
            print(f" {target.name}", end="", flush=True)
        print()
    return samples, rss, tallies


BUSY_BEFORE = 0.1
"""Above this share of all cores busy before the start, something else competes for them."""


def run(args: argparse.Namespace) -> int:
    body = payload()
    busy = machine_busy()
    server_core, load_core = split_cores()
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})
    print(f"mfo serve intake benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"{platform.node()}: {os.cpu_count()} cores, Linux {platform.release()},"
        f" Python {platform.python_version()}; servers on core {server_core},"
        f" load generator on core {load_core}"
    )
    print(
        f"{len(body)}-byte signed push body; {args.requests} requests per round after"
        f" {args.warmup} warm-up, {args.rounds} rounds, median req/s shown"
    )
    print(f"cores busy before the start: {busy:.0%}", end="")
    print(
        "  WARNING: other processes compete for the cores; the numbers will be noisy"
        if busy >= BUSY_BEFORE
        else ""
    )
    with tempfile.TemporaryDirectory(prefix="mfo-intake-bench-") as tmp:
        workdir = Path(tmp)
        samples, rss, tallies = intake_rounds(args, body, workdir, server_core)
        report(samples, rss, args.concurrency)
        status = check(tallies)
        if args.forward_events:
            status = forwarding(args, body, workdir, server_core, load_core) or status
    return status


def check(tallies: dict[str, list[Tally]]) -> int:
    """Print whether every store holds exactly the events that got a 202; 0 if all do."""
    print("\nstore check (events in each SQLite file vs. 202 answers, warm-ups included):")
    ok = True
    for name, runs in tallies.items():
        failed: dict[str, int] = {}
        for tally in runs:
            for reason, count in tally.failed.items():
                failed[reason] = failed.get(reason, 0) + count
        same = all(tally.stored == tally.accepted for tally in runs)
        ok = ok and same and not failed
        others = ", ".join(f"{n} {reason}" for reason, n in failed.items()) or "no other answers"
        print(
            f"  {name:<13} {sum(t.stored for t in runs)} stored,"
            f" {sum(t.accepted for t in runs)} answered 202, in {len(runs)} stores:"
            f" {'OK' if same else 'MISMATCH'}; {others}"
        )
    return 0 if ok else 1


def _concurrencies(text: str) -> list[int]:
    values = [int(part) for part in text.replace(",", " ").split()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrency must be positive integers, e.g. 1,64")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per round")
    parser.add_argument(
        "--concurrency",
        type=_concurrencies,
        nargs="+",
        default=[[1, 64]],
        help="in-flight requests, e.g. `1 64` or `1,8,64` (default: 1 64)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each restarts the servers")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests first")
    parser.add_argument(
        "--forward-events",
        type=int,
        default=2000,
        help="events for the forwarding phase (default 2000; 0 skips it)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging.level of mfo serve (default info, its own default: a line per event)",
    )
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline()
        return
    args.concurrency = [c for group in args.concurrency for c in group]
    if args.requests < 2 or args.rounds < 1 or args.warmup < 0:
        parser.error("--requests must be at least 2, --rounds at least 1, --warmup at least 0")
    if args.forward_events != 0 and args.forward_events < 100:
        parser.error("--forward-events must be 0 (no forwarding phase) or at least 100")

    exit_with(lambda: run(args), "interrupted; servers stopped")


if __name__ == "__main__":
    main()
