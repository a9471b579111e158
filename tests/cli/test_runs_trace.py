"""`mfo runs show --trace`: a recorded run as Chrome trace-event JSON."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mfo_client.cli import app

runner = CliRunner()

FLOW = """
name: Traced
tasks:
  - {id: a, type: simple_log_task, config: {log_message: "a"}, successors: [c]}
  - {id: b, type: simple_log_task, config: {log_message: "b"}, successors: [c]}
  - {id: c, type: simple_log_task, config: {log_message: "c"}}
"""


def test_trace_has_one_complete_event_per_task_in_run_order(tmp_path: Path) -> None:
    flow = tmp_path / "traced.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    db = tmp_path / "runs.db"
    ran = runner.invoke(app, ["flow", "run", str(flow), "--history", str(db), "--json"])
    assert ran.exit_code == 0, ran.output
    run_id = json.loads(ran.stdout)["run_id"]
    trace = tmp_path / "trace.json"
    shown = runner.invoke(
        app, ["runs", "show", run_id, "--history", str(db), "--trace", str(trace)]
    )
    assert shown.exit_code == 0, shown.output
    doc = json.loads(trace.read_text(encoding="utf-8"))
    tasks = {e["name"]: e for e in doc["traceEvents"] if e["ph"] == "X"}
    assert sorted(tasks) == ["a", "b", "c"]
    assert all(e["cat"] == "simple_log_task" for e in tasks.values())
    assert all(e["args"] == {"status": "succeeded", "attempts": 1} for e in tasks.values())
    assert tasks["c"]["ts"] >= tasks["a"]["ts"] + tasks["a"]["dur"]
    assert tasks["c"]["ts"] >= tasks["b"]["ts"] + tasks["b"]["dur"]
    assert doc["otherData"]["run_id"] == run_id
