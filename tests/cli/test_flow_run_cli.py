"""`mfo flow run`: inputs, config-provided task settings, exit codes, JSON output."""

from __future__ import annotations

import json
from pathlib import Path

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
