"""The whole client on its example config, as real processes: what `make run` starts.

A fresh copy of `examples/` runs the reference MFO server and `mfo serve --config
examples/config.yaml`, and each example event is sent with `mfo send`, as README says. Then the
client is killed with SIGKILL while flow runs are in progress and started again: every accepted
event reaches the server once, and every triggered run finishes once (the resources and chat
messages its flow creates exist once each).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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

from mfo_client.flows import RunRecord, RunState, SQLiteRunHistory
from mfo_client.webhook.signing import sign
from tests._servers import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "dev-token"
GITHUB_SECRET = "dev-github-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Client:
    """The reference server and `mfo serve` on the example config, in a copy of examples/."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        shutil.copytree(ROOT / "examples", tmp / "examples")
        self.mfo_port = free_port()
        self.listen_port = free_port()
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MFO_PORT": str(self.mfo_port),
            "LISTEN_PORT": str(self.listen_port),
            "MFO_LOGGING__FORMAT": "json",
        }
        for name in ("MFO_TOKEN", "MFO_WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET", "MFO_CONFIG"):
            self.env.pop(name, None)
        self.log = tmp / "processes.log"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.api = f"http://127.0.0.1:{self.mfo_port}"

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mfo_client", *args],
                cwd=self.dir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(proc)
        return proc

    def mfo_server(self) -> subprocess.Popen[bytes]:
        proc = self.start("dev-server", "--port", str(self.mfo_port), "--db", "dev-server.db")
        wait_http(f"{self.api}/healthz")
        return proc

    def serve(self) -> subprocess.Popen[bytes]:
        proc = self.start("serve", "--config", "examples/config.yaml")
        wait_http(f"http://127.0.0.1:{self.listen_port}/healthz")
        return proc

    def mfo(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mfo_client", *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.api}{path}", params=params, headers=AUTH, timeout=10)
        response.raise_for_status()
        return response.json()

    def all_items(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.get(path, limit=1000, **({"cursor": cursor} if cursor else {}))
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    def runs(self) -> list[RunRecord]:
        async def read() -> list[RunRecord]:
            async with SQLiteRunHistory(self.dir / ".mfo" / "runs.db") as history:
                return await history.list_runs(limit=10_000)

        return asyncio.run(read())

    def wait_runs(self, count: int, timeout: float = 60.0) -> list[RunRecord]:
        """The runs once `count` of them have ended."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs() if (self.dir / ".mfo" / "runs.db").exists() else []
            done = [r for r in runs if r.status.is_final]
            if len(done) >= count:
                return runs
            assert time.monotonic() < deadline, (
                f"{len(done)} of {count} runs ended in {timeout} s; log:\n"
                + self.log.read_text()[-3000:]
            )
            time.sleep(0.2)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    c = Client(tmp_path)
    try:
        yield c
    finally:
        for proc in c.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_each_example_event_is_forwarded_and_starts_its_flows(client: Client) -> None:
    client.mfo_server()
    client.serve()
    event_ids: dict[str, str] = {}
    for file in sorted((client.dir / "examples" / "events").glob("*/*.json")):
        source = file.parent.name
        rel = str(file.relative_to(client.dir))
        sent = client.mfo("send", rel, "--config", "examples/config.yaml", "--source", source)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.startswith("202"), sent.stdout
        event_ids[file.name] = json.loads(sent.stdout.splitlines()[1])["id"]
    assert set(event_ids) == {
        "quickstart_event.json",
        "push.new_branch.json",
        "issues.opened.json",
        "ping.json",
    }

    runs = client.wait_runs(3)
    assert sorted((r.trigger, r.status) for r in runs) == [
        ("github-issues", RunState.SUCCEEDED),
        ("github-push", RunState.SUCCEEDED),
        ("user-created", RunState.SUCCEEDED),
    ]
    by_trigger = {r.trigger: r for r in runs}
    config_file = str((client.dir / "examples" / "config.yaml").resolve())
    assert {r.config_path for r in runs} == {config_file}  # so `mfo runs resume` reaches the server
    assert by_trigger["github-push"].event_id == event_ids["push.new_branch.json"]
    listed = client.mfo("runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["run_id"] for r in json.loads(listed.stdout)} == {r.run_id for r in runs}

    for event_id in event_ids.values():  # every event reached the server, the ping included
        assert client.get(f"/api/events/{event_id}")["id"] == event_id
    resources = {r["id"]: r for r in client.all_items("/api/resources")}
    assert sorted(
        (r["content"]["repository"], r["content"]["author"]) for r in resources.values()
    ) == [
        ("Codertocat/Hello-World", "Codertocat"),
        ("Codertocat/Hello-World", "Codertocat"),
    ]
    messages = [
        m["message"] for m in client.all_items("/api/chat/threads/github_activity/messages")
    ]
    assert len(messages) == 2
    for trigger in ("github-push", "github-issues"):
        resource_id = by_trigger[trigger].task("record_activity").outputs["resourceID"]  # type: ignore[union-attr]
        assert resource_id in resources
        (message,) = [m for m in messages if resource_id in m]
        assert "Codertocat/Hello-World" in message and "by Codertocat" in message
    # The run's log lines (JSON here) carry the event and run ids, the task's own lines too.
    logged = [
        json.loads(line) for line in client.log.read_text().splitlines() if line.startswith("{")
    ]
    run = by_trigger["user-created"]
    task_lines = [r for r in logged if r.get("task_id") == "log_event_task"]
    assert task_lines and all(
        (r["event_id"], r["run_id"], r["trigger"]) == (run.event_id, run.run_id, "user-created")
        for r in task_lines
    ), task_lines
    notify = by_trigger["user-created"].task("send_notification_task")
    assert notify is not None
    notification = client.get(f"/api/notifications/{notify.outputs['notificationID']}")
    assert notification["message"] == "Event user_created received for user user123."


@pytest.mark.timeout(240)
def test_kill_9_while_flows_run_then_every_event_and_run_completes_once(client: Client) -> None:
    client.mfo_server()
    serve = client.serve()
    # Slow answers keep runs and sends in flight when the kill lands.
    httpx.post(f"{client.api}/_admin/faults", json={"latency_ms": 150}).raise_for_status()
    template = json.loads((client.dir / "examples/events/github/push.new_branch.json").read_bytes())
    url = f"http://127.0.0.1:{client.listen_port}/github"
    total = 60

    async def send_all() -> dict[int, str]:
        accepted: dict[int, str] = {}

        async def one(n: int, http: httpx.AsyncClient) -> None:
            payload = {**template, "after": f"{n:040x}", "pusher": {"name": f"pusher-{n}"}}
            body = json.dumps(payload).encode()
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                **sign("github", GITHUB_SECRET, body),
            }
            response = await http.post(url, content=body, headers=headers)
            assert response.status_code == 202, response.text
            accepted[n] = response.json()["id"]

        async with httpx.AsyncClient(timeout=30) as http:
            await asyncio.gather(*(one(n, http) for n in range(total)))
        return accepted

    accepted = asyncio.run(send_all())
    assert len(accepted) == total
    client.wait_runs(4, timeout=60)  # some runs ended, the rest are queued or in flight
    serve.send_signal(signal.SIGKILL)
    serve.wait(10)
    interrupted = [r for r in client.runs() if not r.status.is_final]
    assert interrupted, "the kill should land while runs are in progress"

    httpx.delete(f"{client.api}/_admin/faults").raise_for_status()
    client.serve()
    runs = client.wait_runs(total, timeout=120)

    assert len(runs) == total
    assert all(r.status is RunState.SUCCEEDED for r in runs), [
        (r.run_id, r.status, r.error) for r in runs if r.status is not RunState.SUCCEEDED
    ]
    assert {r.event_id for r in runs} == set(accepted.values())
    assert any(r.resumes > 0 for r in runs)  # runs caught mid-way were resumed, not restarted
    deadline = time.monotonic() + 60
    while True:
        stored = [e["id"] for e in client.all_items("/api/events")]
        if set(stored) >= set(accepted.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(stored) == sorted(accepted.values())  # every event, each once
    authors = [r["content"]["author"] for r in client.all_items("/api/resources")]
    assert sorted(authors) == sorted(f"pusher-{n}" for n in range(total))  # each run's once
    messages = client.all_items("/api/chat/threads/github_activity/messages")
    assert len(messages) == total
