"""`mfo flow run`: inputs, config-provided task settings, exit codes, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mfo_client.cli import app
from mfo_client.cli._flow_run import parse_inputs

runner = CliRunner()

FLOW = """
name: Rules
tasks:
  - id: pick
    type: data_transform_task
    config:
      source: input
      transformation_rule: rows_only
"""


def test_parse_inputs_nests_dotted_keys_and_reads_json() -> None:
    assert parse_inputs(["eventName=user_signup", "input.dataID=42", "input.tags=[1,2]"]) == {
        "eventName": "user_signup",
        "input": {"dataID": 42, "tags": [1, 2]},
    }
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_inputs(["novalue"])


def test_config_rules_reach_the_tasks(tmp_path: Path) -> None:
    flow = tmp_path / "rules.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        "flows:\n  transformation_rules:\n    rows_only: {expression: 'rows[].n'}\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        app,
        [
            "flow",
            "run",
            str(flow),
            "--config",
            str(config),
            "--no-history",
            "--json",
            "--input",
            'input={"rows": [{"n": 1}, {"n": 2}]}',
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded"
    assert data["tasks"]["pick"]["outputs"] == {"output": [1, 2]}


def test_unknown_rule_without_config_fails_the_flow_with_exit_1(tmp_path: Path) -> None:
    flow = tmp_path / "rules.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    result = runner.invoke(
        app, ["flow", "run", str(flow), "--no-history", "--json", "--input", "input={}"]
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["tasks"]["pick"]["status"] == "failed"
    assert "rows_only" in data["tasks"]["pick"]["error"]
    assert "ruleset_v1" in data["tasks"]["pick"]["error"]


def test_invalid_definition_exits_2(tmp_path: Path) -> None:
    flow = tmp_path / "bad.yaml"
    flow.write_text("name: x\ntasks:\n  - id: a\n    type: nope\n", encoding="utf-8")
    result = runner.invoke(app, ["flow", "run", str(flow), "--no-history"])
    assert result.exit_code == 2
    assert 'unknown task type "nope"' in result.output


DRY = """\
name: Dry
tasks:
  - id: fetch
    type: http_get_task
    config: {url: "https://api.example.com/data/{{ input.dataID }}"}
    successors: [store]
  - id: store
    type: simple_log_task
    config:
      log_message: "got {{ fetch.body.id }} for {{ input.user }}"
  - id: count
    type: simple_log_task
    dependencies: [fetch]
    config: {log_message: "{{ fetch.body.rows | length }} rows"}
"""


def dry_run(tmp_path: Path, text: str, *inputs: str) -> Any:
    flow = tmp_path / "dry.yaml"
    flow.write_text(text, encoding="utf-8")
    args = ["flow", "run", str(flow), "--dry-run"]
    for pair in inputs:
        args += ["--input", pair]
    return runner.invoke(app, args)


def one_line(text: str) -> str:
    """The output as one line, however the console wrapped it."""
    return " ".join(text.split())


def test_dry_run_shows_upstream_values_as_filled_at_run_time(tmp_path: Path) -> None:
    result = dry_run(tmp_path, DRY, "input.dataID=42", "input.user=u1")

    assert result.exit_code == 0, result.output
    shown = one_line(result.stdout)
    assert '"url": "https://api.example.com/data/42"' in shown
    assert '"log_message": "got <filled at run time: fetch.body.id> for u1"' in shown
    # A filter needs the real value: shown as written, to be rendered when it runs.
    assert '"log_message": "{{ fetch.body.rows | length }} rows"' in shown
    assert "rendered when it runs" in shown
    assert "error" not in result.output


def test_dry_run_exits_2_naming_each_missing_input(tmp_path: Path) -> None:
    result = dry_run(tmp_path, DRY, "input.dataID=42")

    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        'error: flow "Dry", task "store", config.log_message: undefined variable "input.user": '
        '"input" has no "user" (it has: dataID)'
    ]
    assert "dry run: 1 problem: the run would fail" in result.stderr


def test_dry_run_refuses_reading_a_task_that_is_not_upstream(tmp_path: Path) -> None:
    text = DRY.replace("    successors: [store]\n", "")
    result = dry_run(tmp_path, text, "input.dataID=42", "input.user=u1")

    assert result.exit_code == 2
    assert 'task "fetch" is not upstream of "store"' in one_line(result.stderr)
    assert 'add "fetch" to its dependencies' in one_line(result.stderr)


def test_dry_run_checks_when_and_for_each_and_gives_items_placeholders(tmp_path: Path) -> None:
    text = (
        DRY
        + """\
  - id: each
    type: simple_log_task
    for_each: "input.people"
    when: "item.active and input.enabled"
    config: {log_message: "hi {{ item.name }}"}
"""
    )
    result = dry_run(tmp_path, text, "input.dataID=42", "input.user=u1")

    assert result.exit_code == 2
    shown = one_line(result.stderr)
    assert 'flow "Dry", tasks[each].when: undefined variable "input.enabled"' in shown
    assert 'flow "Dry", tasks[each].for_each: undefined variable "input.people"' in shown
    assert '"log_message": "hi <filled at run time: item.name>"' in one_line(result.stdout)

    ok = dry_run(
        tmp_path, text, "input.dataID=42", "input.user=u1", "input.people=[]", "input.enabled=true"
    )
    assert ok.exit_code == 0, ok.output


def test_a_task_named_like_an_input_key_exits_2_and_is_warned_of(tmp_path: Path) -> None:
    flow = tmp_path / "named.yaml"
    flow.write_text(
        "name: Named\ntasks:\n  - id: input\n    type: simple_log_task\n"
        "    config: {log_message: hi}\n",
        encoding="utf-8",
    )
    validate = runner.invoke(app, ["flow", "validate", str(flow)])
    assert validate.exit_code == 0
    assert one_line(validate.stderr) == (
        f'warning: {flow}:3: tasks[input].id: a task named "input" hides the initial '
        'context\'s key "input", which a trigger gives every flow by default: such a run '
        "refuses to start; rename the task"
    )

    result = runner.invoke(app, ["flow", "run", str(flow), "--no-history", "-i", "input.x=1"])
    assert result.exit_code == 2
    assert (
        f'error: flow "Named" ({flow}): task "input" (line 3) has the name of the initial '
        'context\'s key "input", so its outputs would hide that input from every task after '
        "it; rename the task"
    ) in one_line(result.stderr)
    assert dry_run(tmp_path, flow.read_text(), "input.x=1").exit_code == 2

    # Without that key in the input, the task runs.
    assert runner.invoke(app, ["flow", "run", str(flow), "--no-history"]).exit_code == 0
