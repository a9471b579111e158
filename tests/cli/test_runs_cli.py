"""`mfo flow run` recording history, and `mfo runs list|show|resume|cancel`, on a real SQLite
file with built-in task types against a local HTTP server; one run is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from mfo_client.cli import app
from mfo_client.flows import RunState, RunStatus, SQLiteRunHistory, TaskStatus
from tests._servers import run_app


@dataclass
class Peer:
    """What the flows fetch: `/flaky` fails until `fixed`; the first `/slow` request hangs
    until `release` (or 60 s), later ones answer at once."""

    url: str = ""
    fixed: bool = False
    hits: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Starlette:
        async def flaky(request: Request) -> JSONResponse:
            self.hits["flaky"] = self.hits.get("flaky", 0) + 1
            if not self.fixed:
                return JSONResponse({"error": "not yet"}, status_code=503)
            return JSONResponse({"n": 42})

        async def slow(request: Request) -> JSONResponse:
            n = self.hits["slow"] = self.hits.get("slow", 0) + 1
            if n == 1:
                deadline = time.monotonic() + 60
                while not self.release.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
            return JSONResponse({"slow": n})

        return Starlette(routes=[Route("/flaky", flaky), Route("/slow", slow)])


@pytest.fixture
def peer() -> Iterator[Peer]:
    peer = Peer()
    with run_app(peer.app()) as url:
        peer.url = url
        try:
            yield peer
        finally:
            peer.release.set()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The commands route logging to the stderr CliRunner swaps in; put it back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def write_flow(path: Path, url: str) -> Path:
    path.write_text(
        f"""name: fetcher
tasks:
  - id: greet
    type: simple_log_task
    config: {{log_message: "hello from greet"}}
    successors: [fetch]
  - id: fetch
    type: http_get_task
    config: {{url: "{url}", allow_hosts: ["127.0.0.1"], timeout: 90s}}
    successors: [report]
  - id: report
    type: data_transform_task
    dependencies: [greet]
    config:
      mapping: {{greeting: greet.message, body: fetch.body}}
""",
        encoding="utf-8",
    )
    return path


def mfo(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def show_json(db: Path, run_id: str) -> dict[str, object]:
    code, out, err = mfo("runs", "show", run_id, "--json", "--history", str(db))
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def tasks_of(data: dict[str, object]) -> dict[str, dict[str, object]]:
    tasks = data["tasks"]
    assert isinstance(tasks, list)
    return {t["task_id"]: t for t in tasks}


def test_a_failed_run_is_listed_shown_and_resumed(peer: Peer, tmp_path: Path) -> None:
    db = tmp_path / "h" / "runs.db"
    flow = write_flow(tmp_path / "flow.yaml", f"{peer.url}/flaky")
    code, out, err = mfo("flow", "run", str(flow), "--history", str(db))
    assert code == 1, err
    run_id = err.split()[1]  # "run <id>" comes first
    assert f"resume it with: mfo runs resume {run_id} --history {db}" in err

    code, out, err = mfo("runs", "list", "--json", "--history", str(db))
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed["run_id"] == run_id and listed["status"] == "failed"
    assert listed["error"] == "task failed: fetch" and listed["tasks_succeeded"] == 1

    code, out, err = mfo("runs", "list", "--history", str(db))
    assert code == 0 and run_id[:8] in out and "failed" in out
    assert mfo("runs", "list", "--status", "succeeded", "--json", "--history", str(db))[1] == "[]\n"
    assert mfo("runs", "list", "--flow", "other", "--history", str(db))[1].startswith("no runs")

    data = show_json(db, run_id)
    assert data["flow_file"] == str(flow) and data["initial_context"] == {}
    tasks = tasks_of(data)
    assert list(tasks) == ["greet", "fetch", "report"]  # started in this order, then pending
    assert tasks["greet"]["status"] == "succeeded"
    assert tasks["greet"]["outputs"] == {"message": "hello from greet"}
    assert tasks["fetch"]["status"] == "failed" and "503" in str(tasks["fetch"]["error"])
    assert tasks["report"]["status"] == "skipped"
    assert isinstance(tasks["fetch"]["offset"], float) and tasks["fetch"]["offset"] >= 0

    code, out, err = mfo("runs", "show", run_id, "--history", str(db))
    assert code == 0, err
    for text in ("fetcher", "failed", "greet", "fetch", "report", "resume it with"):
        assert text in out

    peer.fixed = True
    code, out, err = mfo("runs", "resume", run_id, "--json", "--history", str(db))
    assert code == 0, err
    result = json.loads(out)
    assert result["run_id"] == run_id and result["status"] == "succeeded"
    assert result["tasks"]["report"]["outputs"]["output"] == {
        "greeting": "hello from greet",
        "body": {"n": 42},
    }
    assert "hello from greet" not in err  # greet was not run again
    assert peer.hits["flaky"] == 2

    data = show_json(db, run_id)
    assert data["status"] == "succeeded" and data["resumes"] == 1
    assert {t: v["status"] for t, v in tasks_of(data).items()} == dict.fromkeys(
        ["greet", "fetch", "report"], "succeeded"
    )
    code, out, err = mfo("runs", "resume", run_id, "--history", str(db))
    assert code == 2 and "already succeeded; nothing to resume" in err


def test_history_is_on_by_default_and_can_be_turned_off(
    peer: Peer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MFO_RUNS_DB", raising=False)
    peer.fixed = True
    flow = write_flow(tmp_path / "flow.yaml", f"{peer.url}/flaky")
    code, _, err = mfo("flow", "run", str(flow), "--no-history")
    assert code == 0, err
    assert not (tmp_path / ".mfo").exists() and "run " not in err.splitlines()[0]

    code, _, err = mfo("flow", "run", str(flow))
    assert code == 0, err
    code, out, _ = mfo("runs", "list", "--json")
    assert [r["status"] for r in json.loads(out)] == ["succeeded"]
    assert (tmp_path / ".mfo" / "runs.db").exists()

    other = tmp_path / "env.db"
    code, _, err = mfo("flow", "run", str(flow), env={"MFO_RUNS_DB": str(other)})
    assert code == 0, err
    code, out, _ = mfo("runs", "list", "--json", env={"MFO_RUNS_DB": str(other)})
    assert len(json.loads(out)) == 1


def test_an_unusable_history_stops_the_run_before_it_starts(peer: Peer, tmp_path: Path) -> None:
    flow = write_flow(tmp_path / "flow.yaml", f"{peer.url}/flaky")
    code, _, err = mfo("flow", "run", str(flow), "--history", str(tmp_path))  # a directory
    assert code == 2
    assert f"error: cannot record the run in the run history {tmp_path}" in err
    assert "--no-history" in err and peer.hits == {}


def test_unknown_runs_and_missing_histories(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    code, out, _ = mfo("runs", "list", "--history", str(db))
    assert code == 0 and out.startswith("no runs")
    assert not db.exists()  # reading creates nothing
    for command in ("show", "resume", "cancel"):
        code, _, err = mfo("runs", command, "nope", "--history", str(db))
        assert code == 2 and f"no run history at {db}" in err

    asyncio.run(_record_runs(db))
    for command in ("show", "resume", "cancel"):
        code, _, err = mfo("runs", command, "nope", "--history", str(db))
        assert code == 2 and f'no run "nope" in {db}' in err


async def _record_runs(db: Path) -> None:
    definition = {"name": "x", "tasks": [{"id": "a", "type": "simple_log_task"}]}
    async with SQLiteRunHistory(db) as history:
        for run_id in ("done", "live", "dead"):
            await history.start_run(run_id, "x", None, definition, {}, time.time())
        await history.finish_run("done", RunStatus.SUCCEEDED, None, time.time())
    host = socket.gethostname()
    with sqlite3.connect(db) as conn:  # "dead": its process is gone
        conn.execute("UPDATE runs SET owner = ? WHERE id = 'dead'", (f"{host}:999999999",))
    conn.close()


def test_cancel(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    asyncio.run(_record_runs(db))
    code, _, err = mfo("runs", "cancel", "done", "--history", str(db))
    assert code == 2 and 'run "done" already succeeded; nothing to cancel' in err

    code, out, err = mfo("runs", "cancel", "live", "--history", str(db))
    assert code == 0 and "cancel requested for run live" in out
    assert show_json(db, "live")["cancel_requested"] is True

    dead = show_json(db, "dead")
    assert dead["status"] == "running" and dead["process_gone"] is True
    code, out, err = mfo("runs", "cancel", "dead", "--history", str(db))
    assert code == 0 and "marked cancelled" in out
    assert show_json(db, "dead")["status"] == "cancelled"


async def _record_paused(db: Path) -> None:
    definition = {"name": "x", "tasks": [{"id": "a", "type": "simple_log_task"}]}
    async with SQLiteRunHistory(db) as history:
        await history.start_run("paused", "x", None, definition, {}, 1.0, trigger="hook")
        await history.finish_run("paused", RunStatus.CANCELLED, "the run was cancelled", 2.0)


def test_a_paused_triggered_run_is_cancelled_for_good_before_it_can_be_retried(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    asyncio.run(_record_paused(db))
    code, _, err = mfo("runs", "retry", "paused", "--history", str(db))
    assert code == 2 and "was paused when its worker stopped" in err

    code, out, _ = mfo("runs", "cancel", "paused", "--history", str(db))
    assert code == 0 and "it will not be resumed" in out
    assert show_json(db, "paused")["cancel_requested"] is True
    code, _, err = mfo("runs", "cancel", "paused", "--history", str(db))
    assert code == 2 and "already cancelled" in err


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_killed_run_resumes_where_it_stopped(peer: Peer, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    flow = write_flow(tmp_path / "flow.yaml", f"{peer.url}/slow")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MFO_RUNS_DB", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfo_client", "flow", "run", str(flow), "--history", str(db)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        _wait_for("the fetch", lambda: peer.hits.get("slow") == 1 or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert "hello from greet" in err
    run_id = err.split()[1]

    before = show_json(db, run_id)
    assert before["status"] == "running" and before["process_gone"] is True
    tasks = tasks_of(before)
    assert tasks["greet"]["status"] == "succeeded"  # durable before fetch started
    assert tasks["fetch"]["status"] == "running" and tasks["report"]["status"] == "pending"

    code, out, err = mfo("runs", "resume", run_id, "--history", str(db))
    assert code == 0, err
    assert "restored (not re-run): greet" in err
    assert "hello from greet" not in err and "> greet" not in err
    assert "> fetch" in err and "succeeded" in out
    assert peer.hits["slow"] == 2

    after = show_json(db, run_id)
    assert after["status"] == "succeeded" and after["resumes"] == 1
    tasks = tasks_of(after)
    assert tasks["greet"] == tasks_of(before)["greet"]  # its record is the first run's
    assert {t: v["status"] for t, v in tasks.items()} == dict.fromkeys(
        ["greet", "fetch", "report"], TaskStatus.SUCCEEDED.value
    )
    assert tasks["report"]["outputs"] == {
        "output": {"greeting": "hello from greet", "body": {"slow": 2}}
    }
    assert after["status"] == RunState.SUCCEEDED.value


def write_parent_flow(path: Path, url: str) -> Path:
    path.write_text(
        f"""name: parent
tasks:
  - id: greet
    type: simple_log_task
    config: {{log_message: "hello from greet"}}
    successors: [sub]
  - id: sub
    type: subflow
    config:
      input: {{who: "{{{{ greet.message }}}}"}}
      tasks:
        - id: fetch
          type: http_get_task
          config: {{url: "{url}", allow_hosts: ["127.0.0.1"]}}
""",
        encoding="utf-8",
    )
    return path


def test_a_subflow_child_run_is_listed_shown_and_retried_through_its_parent(
    peer: Peer, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    flow = write_parent_flow(tmp_path / "parent.yaml", f"{peer.url}/flaky")
    code, _, err = mfo("flow", "run", str(flow), "--history", str(db))
    assert code == 1, err
    parent = err.split()[1]
    child = f"{parent}/sub"

    code, out, err = mfo("runs", "list", "--history", str(db))
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["RUN", "STATUS", "STARTED", "TIME", "OK", "PARENT", "FLOW"]
    rows = {line.split()[0]: line.split() for line in lines}
    assert rows[child][1] == "failed" and rows[child][6:8] == [parent, "parent.sub"]
    assert rows[parent][1] == "failed" and rows[parent][6:8] == ["-", "parent"]
    listed = json.loads(mfo("runs", "list", "--json", "--history", str(db))[1])
    assert {r["run_id"]: (r["parent_run_id"], r["parent_task_id"]) for r in listed} == {
        parent: (None, None),
        child: (parent, "sub"),
    }

    code, out, err = mfo("runs", "show", child, "--history", str(db))
    assert code == 0, err
    assert f"parent    task sub of run {parent}" in out
    assert f"resume its parent with: mfo runs resume {parent} --history {db}" in out
    code, out, err = mfo("runs", "show", parent, "--history", str(db))
    assert code == 0, err
    assert f"child run {child}" in out and f"mfo runs retry {parent}" in out

    for command in ("resume", "retry"):
        code, _, err = mfo("runs", command, child, "--history", str(db))
        assert code == 2 and f'child run of task "sub" of run "{parent}"' in err, err

    peer.fixed = True
    code, out, err = mfo("runs", "retry", parent, "--history", str(db))
    assert code == 0, err
    new = err.split()[1]
    assert err.startswith(f"run {new} (a retry of run {parent})")
    assert new != parent and "hello from greet" in err  # every task ran again
    assert "flow parent succeeded" in out
    runs = {
        r["run_id"]: r["status"]
        for r in json.loads(mfo("runs", "list", "--json", "--history", str(db))[1])
    }
    assert runs == {parent: "failed", child: "failed", new: "succeeded", f"{new}/sub": "succeeded"}
    code, _, err = mfo("runs", "retry", new, "--history", str(db))
    assert code == 2 and "succeeded; retry only a failed or cancelled run" in err


async def _record_event_runs(db: Path) -> None:
    definition = {
        "name": "x",
        "tasks": [{"id": "a", "type": "simple_log_task", "config": {"log_message": "hi"}}],
    }
    async with SQLiteRunHistory(db) as history:
        for n, (trigger, event) in enumerate([("push", "e1"), ("push", "e2"), ("tag", "e1")]):
            run_id = f"{trigger}-{event}"
            await history.start_run(
                run_id, "x", None, definition, {"n": n}, 100.0 + n, trigger=trigger, event_id=event
            )
            await history.finish_run(run_id, RunStatus.FAILED, "task failed: a", 101.0 + n)
        await history.start_run("by-hand", "x", None, definition, {}, 99.0)


def test_list_by_trigger_and_event_and_retry_keeps_them(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    asyncio.run(_record_event_runs(db))

    code, out, err = mfo("runs", "list", "--event", "e1", "--history", str(db))
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["RUN", "STATUS", "STARTED", "TIME", "OK", "TRIGGER", "EVENT", "FLOW"]
    assert [line.split()[0] for line in lines] == ["tag-e1", "push-e1"]
    assert [line.split()[6:9] for line in lines] == [["tag", "e1", "x"], ["push", "e1", "x"]]

    def ids(*filters: str) -> list[str]:
        code, out, err = mfo("runs", "list", *filters, "--json", "--history", str(db))
        assert code == 0, err
        return [r["run_id"] for r in json.loads(out)]

    assert ids("--trigger", "push") == ["push-e2", "push-e1"]
    assert ids("--trigger", "push", "--event", "e1") == ["push-e1"]
    assert ids("--trigger", "tag", "--status", "failed", "--flow", "x") == ["tag-e1"]
    assert ids("--event", "none") == []
    code, out, _ = mfo("runs", "list", "--trigger", "nope", "--history", str(db))
    assert out.startswith("no runs")
    code, out, _ = mfo("runs", "list", "--status", "running", "--history", str(db))
    assert out.splitlines()[0].split() == ["RUN", "STATUS", "STARTED", "TIME", "OK", "FLOW"]

    code, out, err = mfo("runs", "retry", "push-e2", "--json", "--history", str(db))
    assert code == 0, err
    new = json.loads(out)["run_id"]
    retried = show_json(db, new)
    assert (retried["trigger"], retried["event_id"]) == ("push", "e2")
    assert retried["initial_context"] == {"n": 1} and retried["status"] == "succeeded"
    assert ids("--event", "e2") == [new, "push-e2"]
    code, _, err = mfo("runs", "retry", "by-hand", "--history", str(db))
    assert code == 2 and "is recorded as running" in err
