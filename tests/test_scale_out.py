"""Scale-out as real processes: 2 listeners and 3 workers on one Redis, one worker killed.

5,000 events go to the two listeners (`mfo serve --no-workers`) at once; each is forwarded to
the reference MFO server and starts one flow run that creates an MFO resource. Midway one of
the three workers (`mfo worker`) is killed with SIGKILL: the jobs it held are claimed by the
others once idle for their lease time, and runs it had started are resumed. At the end every
accepted event is at the server once, every run succeeded, and every run's resource exists
once.
"""

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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from mfo_client.config import Config
from mfo_client.flows import RunRecord, RunState, open_history
from tests._servers import free_port, wait_http
from tests._stores import REDIS_URL, ensure_redis

SECRET = "scale-secret"
TOTAL = 5000
FLOW = """\
name: "Record"
tasks:
  - id: "store"
    type: "mfo_resource_create_task"
    config: {resource_type: "order", content: {n: "{{.input.n}}"}}
"""


class Cluster:
    def __init__(self, tmp: Path, prefix: str) -> None:
        self.tmp = tmp
        self.prefix = prefix
        self.mfo_port = free_port()
        self.listen_ports = [free_port(), free_port()]
        (tmp / "flow.yaml").write_text(FLOW)
        self.config_file = tmp / "config.yaml"
        self.config_file.write_text(
            f"""
client:
  base_url: "http://127.0.0.1:{self.mfo_port}/api"
  auth_token: dev-token
  timeout: 10s
webhook_listener: {{host: 127.0.0.1, port: 0, secret_key: {SECRET}}}
store:
  backend: redis
  url: "{REDIS_URL}"
  prefix: "{prefix}"
  max_pending: 100000
delivery: {{concurrency: 8, lease_time: 10s, initial_backoff: 100ms, max_backoff: 1s}}
flows: {{lease_time: 5s, max_runs: 16}}
triggers:
  - name: orders
    match: {{type: order_paid}}
    flow: "{tmp / "flow.yaml"}"
    concurrency: 8
logging: {{level: warning}}
""",
            encoding="utf-8",
        )
        self.config = Config.from_file(self.config_file, env={})
        self.log = tmp / "processes.log"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.api = f"http://127.0.0.1:{self.mfo_port}"

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mfo_client", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            )
        self.processes.append(proc)
        return proc

    def all_items(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        headers = {"Authorization": "Bearer dev-token"}
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{self.api}{path}", params=params, headers=headers, timeout=30)
            page.raise_for_status()
            body = page.json()
            items += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                return items

    def runs(self) -> list[RunRecord]:
        async def read() -> list[RunRecord]:
            history = open_history(self.config)
            try:
                return await history.list_runs(limit=TOTAL * 2)
            finally:
                await history.close()

        return asyncio.run(read())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    ensure_redis()
    prefix = f"test-scale-{uuid.uuid4().hex[:8]}"
    c = Cluster(tmp_path, prefix)
    try:
        yield c
    finally:
        for proc in c.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        with Redis.from_url(REDIS_URL) as redis:
            keys = list(redis.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                redis.unlink(*keys[start : start + 500])


@pytest.mark.timeout(600)
def test_two_listeners_three_workers_kill_9_of_one_loses_and_repeats_nothing(
    cluster: Cluster,
) -> None:
    cluster.start(
        "dev-server", "--port", str(cluster.mfo_port), "--db", str(cluster.tmp / "mfo.db")
    )
    wait_http(f"{cluster.api}/healthz")
    for port in cluster.listen_ports:
        cluster.start(
            "serve",
            "--no-workers",
            "--config",
            str(cluster.config_file),
            MFO_WEBHOOK_LISTENER__PORT=str(port),
        )
    for port in cluster.listen_ports:
        wait_http(f"http://127.0.0.1:{port}/healthz")
    workers = [cluster.start("worker", "--config", str(cluster.config_file)) for _ in range(3)]
    victim = workers[0]

    accepted: dict[int, str] = {}

    async def send_all() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(TOTAL):
            queue.put_nowait(n)

        async def sender(http: httpx.AsyncClient) -> None:
            while not queue.empty():
                n = queue.get_nowait()
                port = cluster.listen_ports[n % 2]
                body = json.dumps({"type": "order_paid", "payload": {"n": n}}).encode()
                digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                response = await http.post(
                    f"http://127.0.0.1:{port}/webhook",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": f"sha256={digest}",
                        "X-GitHub-Delivery": f"order-{n}",
                    },
                )
                assert response.status_code == 202, response.text
                accepted[n] = response.json()["id"]
                if len(accepted) == TOTAL // 2 and victim.poll() is None:
                    victim.send_signal(signal.SIGKILL)

        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            await asyncio.gather(*(sender(http) for _ in range(16)))

    asyncio.run(send_all())
    assert len(accepted) == TOTAL
    assert victim.wait(10) == -signal.SIGKILL

    deadline = time.monotonic() + 400
    while True:
        runs = cluster.runs()
        done = [r for r in runs if r.status.is_final]
        if len(done) >= TOTAL or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(runs) == TOTAL, f"{len(runs)} runs on record of {TOTAL}"
    failed = [(r.run_id, r.status, r.error) for r in runs if r.status is not RunState.SUCCEEDED]
    assert not failed, failed[:5]
    assert {r.event_id for r in runs} == set(accepted.values())

    while True:
        stored = [e["id"] for e in cluster.all_items("/api/events")]
        if len(set(stored)) >= TOTAL or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted(stored) == sorted(accepted.values())  # every event, each once
    numbers = [int(r["content"]["n"]) for r in cluster.all_items("/api/resources")]
    assert sorted(numbers) == list(range(TOTAL))  # every run's resource, each once
