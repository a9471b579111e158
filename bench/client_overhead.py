"""Per-request overhead of the API client against raw httpx, measured in the same run.

Starts the reference server (`mfo dev-server`, in-memory store) pinned to one core, pins this
load generator to the other, then alternates rounds of

  baseline: httpx.AsyncClient.post(".../events", json=..., headers=auth + Idempotency-Key)
  client:   AsyncMFOClient.events.send_event(event)

at concurrency 1 and 32, and prints events/s of each, their ratio (goal: >= 0.8) and the CPU
milliseconds this process spent per event. Both sides send the same bytes to the same server,
so the ratio isolates what the client adds: validation, the retry/breaker core and parsing.

    make bench            (or: .venv/bin/python bench/client_overhead.py --events 3000)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from mfo_client import AsyncMFOClient, Event

TOKEN = "bench-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pin(cores: list[int]) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, set(cores))


def start_server(port: int, core: int | None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mfo_client", "dev-server", "--port", str(port), "--token", TOKEN]
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("dev server did not start")


def _event() -> Event:
    return Event(type="bench.tick", payload={"n": 1, "note": "overhead benchmark"})


async def _drive(total: int, concurrency: int, send: Callable[[], Awaitable[object]]) -> float:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await send()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(base: str, total: int, concurrency: int, rounds: int) -> dict[str, list[float]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    raw = httpx.AsyncClient(base_url=f"{base}/api/", limits=limits, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def send_raw() -> object:
        body = _event().model_dump(mode="json")
        response = await raw.post(
            "events", json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
        )
        response.raise_for_status()
        return response.json()

    http = httpx.AsyncClient(
        base_url=f"{base}/api/", limits=limits, timeout=30, headers={"User-Agent": "bench"}
    )
    client = AsyncMFOClient(f"{base}/api", auth=TOKEN, http_client=http)

    async def send_client() -> object:
        return await client.events.send_event(_event())

    results: dict[str, list[float]] = {"raw": [], "client": [], "raw_cpu": [], "client_cpu": []}
    await _drive(min(200, total), concurrency, send_raw)  # warm up connections and the server
    await _drive(min(200, total), concurrency, send_client)
    for _ in range(rounds):
        for name, send in (("raw", send_raw), ("client", send_client)):
            cpu = _cpu()
            results[name].append(await _drive(total, concurrency, send))
            results[f"{name}_cpu"].append((_cpu() - cpu) / total * 1000)  # ms per event
    await raw.aclose()
    await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_core = cores[-1] if len(cores) >= 2 else None
    if server_core is not None:
        _pin([c for c in cores if c != server_core])
    port = _free_port()
    server = start_server(port, server_core)
    base = f"http://127.0.0.1:{port}"
    print(f"mfo-client overhead benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"server pinned to core {server_core}, load to cores {cores[:-1] or 'any'}; "
        f"{args.events} events x {args.rounds} rounds per side, median shown"
    )
    header = f"{'concurrency':>11} {'raw httpx ev/s':>15} {'client ev/s':>12} {'ratio':>6}"
    print(header + f" {'raw cpu ms/ev':>14} {'client cpu ms/ev':>17}")
    try:
        for concurrency in (1, 32):
            r = asyncio.run(measure(base, args.events, concurrency, args.rounds))
            raw, cli = statistics.median(r["raw"]), statistics.median(r["client"])
            print(
                f"{concurrency:>11} {raw:>15.0f} {cli:>12.0f} {cli / raw:>6.2f}"
                f" {statistics.median(r['raw_cpu']):>14.2f}"
                f" {statistics.median(r['client_cpu']):>17.2f}"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
