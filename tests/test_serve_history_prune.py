"""`mfo serve` and `mfo worker` keep the run history to the store's retention: the pruner that
deletes delivered events past `store.retention` also deletes the runs that ended before it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from mfo_client.config import Config
from mfo_client.flows import RunStatus, open_history
from mfo_client.service import Service
from tests._stores import StoreKit

FLOW = """\
name: "LogOnly"
tasks:
  - id: "log"
    type: "simple_log_task"
    config: {log_message: "hello"}
"""
WAIT = 15.0


async def test_the_service_prunes_runs_that_ended_past_the_retention(
    tmp_path: Path, kit: StoreKit
) -> None:
    flow = tmp_path / "log.yaml"
    flow.write_text(FLOW)
    config = Config.from_mapping(
        {
            "client": {"base_url": "http://127.0.0.1:9/api"},
            "webhook_listener": {"port": 0, "secret_key": "s"},
            "store": kit.config(retention="1h"),
            "flows": {"history": str(tmp_path / "runs.db")},
            "triggers": [{"name": "hook", "match": {"type": "push"}, "flow": str(flow)}],
        },
        env={},
    )
    now = time.time()
    async with open_history(config) as history:
        for run_id, ended, status in (
            ("old", now - 7200, RunStatus.SUCCEEDED),
            ("paused", now - 7200, RunStatus.CANCELLED),  # a stopped worker's: to resume
            ("recent", now - 600, RunStatus.FAILED),
        ):
            definition = {"name": "LogOnly", "tasks": []}
            await history.start_run(run_id, "LogOnly", None, definition, {}, ended - 1, "hook")
            await history.finish_run(run_id, status, None, ended)

        service = Service(config, workers=False)
        await service.start()  # the pruner's first pass runs at once
        try:
            deadline = time.monotonic() + WAIT
            while await history.get_run("old") is not None:
                assert time.monotonic() < deadline, "the old run was not pruned"
                await asyncio.sleep(0.05)
        finally:
            await service.stop()
        assert sorted(r.run_id for r in await history.list_runs()) == ["paused", "recent"]
