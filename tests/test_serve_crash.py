"""`mfo serve` as a real process: kill -9 at the worst moments loses no acknowledged event."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._servers import free_port, wait_http

SECRET = "crash-test-secret"


def start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mfo_client", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Setup:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.mfo_port = free_port()
        self.listen_port = free_port()
        self.config = tmp / "config.yaml"
        self.config.write_text(
            f"""
client:
  base_url: http://127.0.0.1:{self.mfo_port}/api
  auth_token: dev-token
  timeout: 2s
  retry: {{max_attempts: 1}}
  circuit_breaker: {{failure_threshold: 1000, reset_timeout: 1s}}
webhook_listener:
  host: 127.0.0.1
  port: {self.listen_port}
  path: /webhook
  secret_key: {SECRET}
store:
  path: {tmp / "outbox.db"}
delivery:
  concurrency: 4
  max_attempts: 100000  # the outage lasts as long as the test wants: never dead-letter here
  initial_backoff: 50ms
  max_backoff: 200ms
logging:
  level: warning
""",
            encoding="utf-8",
        )
        self.log = tmp / "processes.log"
        self.processes: list[subprocess.Popen[bytes]] = []

    def serve(self) -> subprocess.Popen[bytes]:
        proc = start("serve", "--config", str(self.config), log=self.log)
        self.processes.append(proc)
        wait_http(f"http://127.0.0.1:{self.listen_port}/healthz")
        return proc

    def mfo_server(self, *extra: str) -> subprocess.Popen[bytes]:
        db = str(self.tmp / "mfo-server.db")
        proc = start("dev-server", "--port", str(self.mfo_port), "--db", db, *extra, log=self.log)
        self.processes.append(proc)
        wait_http(f"http://127.0.0.1:{self.mfo_port}/healthz")
        return proc

    def send(self, n: int) -> str:
        body = json.dumps({"type": "order_paid", "payload": {"n": n}}).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        response = httpx.post(
            f"http://127.0.0.1:{self.listen_port}/webhook",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": f"sha256={signature}",
                "X-GitHub-Delivery": f"delivery-{n}",
            },
            timeout=10,
        )
        assert response.status_code == 202, response.text
        accepted: str = response.json()["id"]
        return accepted

    def stored_at_server(self) -> list[str]:
        ids: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(
                f"http://127.0.0.1:{self.mfo_port}/api/events",
                params=params,
                headers={"Authorization": "Bearer dev-token"},
                timeout=10,
            ).json()
            ids += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return ids

    def wait_all_stored(self, expected: set[str], timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            stored = self.stored_at_server()
            if set(stored) >= expected or time.monotonic() > deadline:
                return stored
            time.sleep(0.2)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    try:
        yield s
    finally:
        for proc in s.processes:
            stop(proc, signal.SIGKILL)


def test_events_acknowledged_while_the_server_is_down_survive_kill_9(setup: Setup) -> None:
    serve = setup.serve()
    accepted = {setup.send(n) for n in range(60)}
    assert len(accepted) == 60
    serve.send_signal(signal.SIGKILL)  # no chance to flush or clean up anything
    serve.wait(10)

    setup.mfo_server()
    setup.serve()
    stored = setup.wait_all_stored(accepted)
    assert sorted(stored) == sorted(accepted)  # every event, each once


def test_kill_9_while_sends_are_in_flight_redelivers_each_event_once(setup: Setup) -> None:
    # A slow server keeps sends in flight; the kill lands in the middle of them.
    mfo = setup.mfo_server("--latency-ms", "300")
    serve = setup.serve()
    accepted = {setup.send(n) for n in range(40)}
    time.sleep(0.5)
    serve.send_signal(signal.SIGKILL)
    serve.wait(10)
    stop(mfo)
    setup.mfo_server()  # same database, no latency
    setup.serve()  # releases the dead process's leases at once
    stored = setup.wait_all_stored(accepted)
    assert sorted(stored) == sorted(accepted)
    assert len(stored) == len(set(stored))


@pytest.mark.timeout(240)
def test_kill_9_midway_through_2000_concurrent_deliveries_loses_none(setup: Setup) -> None:
    setup.mfo_server()
    serve = setup.serve()
    url = f"http://127.0.0.1:{setup.listen_port}/webhook"
    total, kill_after = 2000, 1000
    accepted: set[str] = set()
    attempted: set[str] = set()

    async def sender(queue: asyncio.Queue[int], http: httpx.AsyncClient) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            body = json.dumps({"type": "order_paid", "payload": {"n": n}}).encode()
            digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            attempted.add(f"delivery-{n}")
            try:
                response = await http.post(
                    url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": f"sha256={digest}",
                        "X-GitHub-Delivery": f"delivery-{n}",
                    },
                )
            except httpx.TransportError:
                continue  # the listener is dead: not acknowledged, so not promised
            if response.status_code == 202:
                accepted.add(response.json()["id"])
            if len(accepted) == kill_after and serve.poll() is None:
                serve.send_signal(signal.SIGKILL)

    async def drive() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(total):
            queue.put_nowait(n)
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(limits=limits, timeout=10) as http:
            await asyncio.gather(*(sender(queue, http) for _ in range(32)))

    asyncio.run(drive())
    serve.wait(10)
    assert kill_after <= len(accepted) < total  # the kill landed midway
    setup.serve()
    stored = setup.wait_all_stored(accepted, timeout=150)
    assert accepted <= set(stored)  # every acknowledged event arrived ...
    assert len(stored) == len(set(stored))  # ... once
    assert set(stored) <= attempted  # and nothing that was never sent
