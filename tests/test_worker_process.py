"""`mfo worker` as a real process: it forwards and runs what a listener-only `mfo serve` stored."""

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
from pathlib import Path

import httpx

from mfo_client.flows import RunState, SQLiteRunHistory
from tests._servers import free_port, wait_http

SECRET = "worker-secret"
FLOW = """\
name: "Record"
tasks:
  - id: "store"
    type: "mfo_resource_create_task"
    config: {resource_type: "signup", content: {user: "{{.input.id}}"}}
"""


def start(tmp: Path, *args: str) -> subprocess.Popen[bytes]:
    with (tmp / "processes.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mfo_client", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def test_a_worker_forwards_and_runs_what_a_listener_only_serve_stored(tmp_path: Path) -> None:
    mfo_port, listen_port = free_port(), free_port()
    (tmp_path / "flow.yaml").write_text(FLOW)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
client: {{base_url: "http://127.0.0.1:{mfo_port}/api", auth_token: dev-token}}
webhook_listener: {{host: 127.0.0.1, port: {listen_port}, secret_key: {SECRET}}}
store: {{path: "{tmp_path / "outbox.db"}"}}
flows: {{history: "{tmp_path / "runs.db"}"}}
triggers:
  - name: signups
    match: {{type: user_created}}
    flow: "{tmp_path / "flow.yaml"}"
""",
        encoding="utf-8",
    )
    processes: list[subprocess.Popen[bytes]] = []
    processes_api: list[httpx.Client] = []
    try:
        processes.append(start(tmp_path, "dev-server", "--port", str(mfo_port), "--db", ":memory:"))
        wait_http(f"http://127.0.0.1:{mfo_port}/healthz")
        listener = start(tmp_path, "serve", "--no-workers", "--config", str(config))
        processes.append(listener)
        wait_http(f"http://127.0.0.1:{listen_port}/healthz")
        accepted = []
        for n in range(3):
            body = json.dumps({"type": "user_created", "payload": {"id": f"u{n}"}}).encode()
            digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            response = httpx.post(
                f"http://127.0.0.1:{listen_port}/webhook",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": f"sha256={digest}",
                    "X-GitHub-Delivery": f"d{n}",
                },
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json())
        listener.send_signal(signal.SIGTERM)
        assert listener.wait(15) == 0
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{mfo_port}", headers={"Authorization": "Bearer dev-token"}
        )
        processes_api.append(api)
        assert api.get("/api/events").json()["items"] == []  # the listener forwarded nothing

        worker = start(tmp_path, "worker", "--config", str(config))
        processes.append(worker)
        deadline = time.monotonic() + 30
        while len(api.get("/api/resources").json()["items"]) < 3:
            assert time.monotonic() < deadline, (tmp_path / "processes.log").read_text()
            time.sleep(0.1)
        while len(api.get("/api/events").json()["items"]) < 3:
            assert time.monotonic() < deadline, (tmp_path / "processes.log").read_text()
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
        users = sorted(r["content"]["user"] for r in api.get("/api/resources").json()["items"])
        stored = sorted(e["id"] for e in api.get("/api/events").json()["items"])
    finally:
        for client in processes_api:
            client.close()
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    assert users == ["u0", "u1", "u2"]
    assert stored == sorted(a["id"] for a in accepted)

    async def runs() -> list[RunState]:
        async with SQLiteRunHistory(tmp_path / "runs.db") as history:
            return [r.status for r in await history.list_runs()]

    assert asyncio.run(runs()) == [RunState.SUCCEEDED] * 3
