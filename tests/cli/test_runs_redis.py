"""`mfo runs ...` against the run history in Redis, chosen by the store of `--config` (or
$MFO_CONFIG): the runs a service records there are listed, shown, cancelled and resumed."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from mfo_client.cli import app
from mfo_client.flows import (
    RedisRunHistory,
    RunState,
    RunStatus,
    SQLiteRunHistory,
    TaskResult,
    TaskStatus,
)
from tests._servers import free_port
from tests._stores import REDIS_URL, ensure_redis

DEFINITION = {
    "name": "greet",
    "tasks": [
        {"id": "a", "type": "simple_log_task", "config": {"log_message": "a"}, "successors": ["b"]},
        {"id": "b", "type": "simple_log_task", "config": {"log_message": "b"}},
    ],
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MFO_* settings of the machine reach the commands."""
    for name in list(os.environ):
        if name.upper().startswith("MFO_"):
            monkeypatch.delenv(name)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys (and only those) are deleted afterwards."""
    ensure_redis()
    prefix = f"test-runs-cli-{uuid.uuid4().hex[:16]}"
    yield prefix

    async def delete() -> None:
        async with Redis.from_url(REDIS_URL) as client:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.unlink(*keys)

    asyncio.run(delete())


def redis_config(path: Path, prefix: str) -> Path:
    path.write_text(
        f"store:\n  backend: redis\n  url: {REDIS_URL}\n  prefix: {json.dumps(prefix)}\n",
        encoding="utf-8",
    )
    return path


def mfo(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


async def record_runs(prefix: str) -> None:
    """As a worker would: "failed" (b failed; resumable), "live" (running), "done", "other"."""
    async with RedisRunHistory(REDIS_URL, prefix) as history:
        now = time.time()
        await history.start_run(
            "failed", "greet", None, DEFINITION, {}, now - 30, trigger="push", event_id="e1"
        )
        a = TaskResult(id="a", type="simple_log_task", status=TaskStatus.SUCCEEDED, attempts=1)
        a.started_at, a.finished_at, a.outputs = now - 29, now - 28, {"recorded": True}
        await history.record_task("failed", a)
        b = TaskResult(id="b", type="simple_log_task", status=TaskStatus.FAILED, attempts=1)
        b.started_at, b.finished_at, b.error = now - 28, now - 27, "boom"
        await history.record_task("failed", b)
        await history.finish_run("failed", RunStatus.FAILED, "task failed: b", now - 27)
        await history.start_run("live", "greet", None, DEFINITION, {}, now - 20)
        await history.start_run("done", "greet", None, DEFINITION, {}, now - 10)
        await history.finish_run("done", RunStatus.SUCCEEDED, None, now - 9)
        await history.start_run("other", "other-flow", None, DEFINITION, {}, now - 5)


def test_runs_list_show_cancel_and_resume_from_the_redis_a_config_names(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    asyncio.run(record_runs(prefix))
    config = redis_config(tmp_path / "mfo.yaml", prefix)
    where = f"redis://127.0.0.1:6379/0 (prefix {prefix})"

    code, out, err = mfo("runs", "list", "--config", str(config), "--json")
    assert code == 0, err
    assert [r["run_id"] for r in json.loads(out)] == ["other", "done", "live", "failed"]
    code, out, err = mfo("runs", "list", "-c", str(config), "--flow", "greet", "--status", "failed")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("failed ") and "(task failed: b)" in lines[1]
    assert "push" in lines[1] and "e1" in lines[1]
    code, out, _ = mfo("runs", "list", "--config", str(config), "--event", "nope")
    assert out == f"no runs in {where}\n"

    code, out, err = mfo("runs", "show", "failed", "--config", str(config))
    assert code == 0, err
    assert "status    failed" in out and "boom" in out
    assert f"resume it with: mfo runs resume failed --config {config}" in out
    code, _, err = mfo("runs", "show", "nope", "--config", str(config))
    assert code == 2 and f'no run "nope" in {where}' in err

    code, out, err = mfo("runs", "cancel", "live", "--config", str(config))
    assert code == 0, err
    assert "cancel requested for run live" in out
    code, _, err = mfo("runs", "cancel", "done", "--config", str(config))
    assert code == 2 and 'run "done" already succeeded' in err

    code, out, err = mfo("runs", "resume", "failed", "--config", str(config), "--json")
    assert code == 0, err
    assert "restored" not in err  # --json: nothing but the result
    assert json.loads(out)["status"] == "succeeded"

    async def check() -> None:
        async with RedisRunHistory(REDIS_URL, prefix) as history:
            assert await history.cancel_requested("live")
            resumed = await history.get_run("failed")
            assert resumed is not None and resumed.status is RunState.SUCCEEDED
            assert resumed.resumes == 1 and resumed.config_path == str(config.resolve())
            assert [(t.task_id, t.status) for t in resumed.tasks] == [
                ("a", TaskStatus.SUCCEEDED),
                ("b", TaskStatus.SUCCEEDED),
            ]
            a = resumed.task("a")
            assert a is not None and a.outputs == {"recorded": True}  # restored, not run again

    asyncio.run(check())
    assert not (tmp_path / ".mfo").exists()  # nothing went to a SQLite file


def test_mfo_config_names_the_history_unless_runs_db_or_history_is_given(
    tmp_path: Path, prefix: str
) -> None:
    asyncio.run(record_runs(prefix))
    config = redis_config(tmp_path / "mfo.yaml", prefix)
    db = tmp_path / "runs.db"

    async def one_sqlite_run() -> None:
        async with SQLiteRunHistory(db) as history:
            await history.start_run("local", "greet", None, DEFINITION, {}, time.time())

    asyncio.run(one_sqlite_run())

    def listed(*args: str, env: dict[str, str] | None = None) -> list[str]:
        code, out, err = mfo("runs", "list", "--json", *args, env=env)
        assert code == 0, err
        return [r["run_id"] for r in json.loads(out)]

    assert len(listed(env={"MFO_CONFIG": str(config)})) == 4
    assert listed(env={"MFO_CONFIG": str(config), "MFO_RUNS_DB": str(db)}) == ["local"]
    assert listed("--history", str(db), env={"MFO_CONFIG": str(config)}) == ["local"]
    # With $MFO_CONFIG a suggested command needs no option.
    code, out, _ = mfo("runs", "show", "failed", env={"MFO_CONFIG": str(config)})
    assert code == 0 and "resume it with: mfo runs resume failed\n" in out + "\n"

    code, _, err = mfo("runs", "list", "--config", str(config), "--history", str(db))
    assert code == 2 and "--history and --config both name a run history" in err


def test_a_sqlite_config_names_its_flows_history_file(tmp_path: Path) -> None:
    db = tmp_path / "state" / "runs.db"
    config = tmp_path / "mfo.yaml"
    config.write_text(f"flows:\n  history: {json.dumps(str(db))}\n", encoding="utf-8")

    async def one_run() -> None:
        async with SQLiteRunHistory(db) as history:
            await history.start_run("r1", "greet", None, DEFINITION, {}, time.time())

    asyncio.run(one_run())
    code, out, err = mfo("runs", "list", "--config", str(config), "--json")
    assert code == 0, err
    assert [r["run_id"] for r in json.loads(out)] == ["r1"]


def test_an_unreachable_redis_is_an_error_that_names_it(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "mfo.yaml"
    config.write_text(
        f"store:\n  backend: redis\n  url: redis://:pw-secret@127.0.0.1:{port}/0\n",
        encoding="utf-8",
    )
    for args in (("list",), ("show", "r1"), ("cancel", "r1")):
        code, out, err = mfo("runs", *args, "--config", str(config))
        assert code == 2, out
        assert f"the run history redis://127.0.0.1:{port}/0 (prefix mfo) failed" in err
        assert "pw-secret" not in err + out
