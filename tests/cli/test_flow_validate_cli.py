"""`mfo flow validate FILE...` and `mfo flow graph FILE`: ok lines on stdout, problems on stderr."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mfo_client.cli import _flow as flow_cli
from mfo_client.cli import app
from mfo_client.flows._context import FlowContext
from mfo_client.flows._registry import TaskCallable, TaskRegistry

FLOWS = Path(__file__).parent.parent / "data" / "flows"
SAMPLE = FLOWS / "sample_flow.yaml"
PIPELINE = FLOWS / "data_pipeline_flow.yaml"
SEED_TYPES = [
    "data_transform_task",
    "http_get_task",
    "mfo_chat_send_task",
    "mfo_resource_create_task",
    "simple_log_task",
    "system_notify_task",
]
NO_BUILTINS_NOTE = (
    "note: the built-in task types are not available (mfo_client.flows.tasks.builtin_registry "
    "is missing), so every task type is reported as unknown"
)


def noop(ctx: FlowContext) -> None:
    return None


def accept_anything(config: Mapping[str, Any]) -> TaskCallable:
    return noop


def seed_registry() -> TaskRegistry:
    registry = TaskRegistry()
    for name in SEED_TYPES:
        registry.register(name, accept_anything)
    return registry


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def seed_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed files' task types, whatever the built-in tasks are at the moment."""
    monkeypatch.setattr(flow_cli, "default_registry", seed_registry)


def invoke(runner: CliRunner, *args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(arg) for arg in args])
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.usefixtures("seed_types")
def test_valid_files_print_ok_and_exit_zero(runner: CliRunner, tmp_path: Path) -> None:
    single = write(tmp_path, "one.yaml", "name: f\ntasks:\n  - {id: a, type: http_get_task}\n")
    code, out, err = invoke(runner, "flow", "validate", SAMPLE, PIPELINE, single)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{SAMPLE}: ok (2 tasks)",
        f"{PIPELINE}: ok (4 tasks)",
        f"{single}: ok (1 task)",
    ]


@pytest.mark.usefixtures("seed_types")
def test_every_problem_of_every_file_is_printed_and_exit_is_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        "name: f\ntasks:\n  - id: a\n    type: t\n    dependancies: [b]\n    successors: [a]\n",
    )
    unknown_type = write(tmp_path, "types.yaml", "name: f\ntasks:\n  - {id: a, type: http_get}\n")
    code, out, err = invoke(runner, "flow", "validate", bad, SAMPLE, unknown_type)
    assert code == 2
    assert out.splitlines() == [f"{SAMPLE}: ok (2 tasks)"]
    assert err.splitlines() == [
        f'error: {bad}:5: tasks[a].dependancies: unknown key (did you mean "dependencies"?)',
        f"error: {bad}:6: tasks[a].successors[0]: a task cannot be its own successor",
        f'error: {unknown_type}:3: tasks[a].type: unknown task type "http_get" (did you mean '
        f'"http_get_task"?); registered types: {", ".join(SEED_TYPES)}',
    ]


@pytest.mark.usefixtures("seed_types")
def test_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(runner, "flow", "validate", tmp_path / "nope.yaml")
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"error: {tmp_path / 'nope.yaml'}: file not found"]


def test_without_builtin_tasks_every_type_is_unknown_with_a_note(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mfo_client.flows.tasks", types.ModuleType("empty"))
    code, out, err = invoke(runner, "flow", "validate", SAMPLE)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        NO_BUILTINS_NOTE,
        f"error: {SAMPLE}:4: tasks[send_notification_task].type: unknown task type "
        '"system_notify_task"; registered types: none',
        f'error: {SAMPLE}:12: tasks[log_event_task].type: unknown task type "simple_log_task"; '
        "registered types: none",
    ]


def test_without_the_tasks_package_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mfo_client.flows.tasks", None)
    assert flow_cli.default_registry().types() == []


def test_the_builtin_registry_is_used_when_present(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("mfo_client.flows.tasks")
    module.builtin_registry = seed_registry  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mfo_client.flows.tasks", module)
    code, out, err = invoke(runner, "flow", "validate", PIPELINE)
    assert (code, out, err) == (0, f"{PIPELINE}: ok (4 tasks)\n", "")


# --- mfo flow graph -------------------------------------------------------------------------


def test_graph_is_mermaid_by_default(runner: CliRunner) -> None:
    code, out, err = invoke(runner, "flow", "graph", SAMPLE)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "---",
        'title: "NotifyAndLogFlow"',
        "---",
        "flowchart TD",
        '    send_notification_task["Send System Notification<br/>system_notify_task"]',
        '    log_event_task["Log Event Details<br/>simple_log_task"]',
        "    send_notification_task --> log_event_task",
    ]


def test_graph_as_dot(runner: CliRunner) -> None:
    code, out, err = invoke(runner, "flow", "graph", PIPELINE, "--format", "dot")
    assert (code, err) == (0, "")
    assert out.startswith('digraph "DataIngestionPipeline" {\n')
    assert out.count(" -> ") == 3
    assert out.endswith("}\n")


def test_graph_of_an_invalid_flow_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "name: f\n")
    code, out, err = invoke(runner, "flow", "graph", bad)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"error: {bad}:1: tasks: required, but not set"]


def test_graph_refuses_an_unknown_format(runner: CliRunner) -> None:
    code, out, err = invoke(runner, "flow", "graph", SAMPLE, "--format", "png")
    assert (code, out) == (2, "")
    assert "'png'" in err
    assert "'mermaid'" in err


def test_flow_group_is_listed(runner: CliRunner) -> None:
    code, out, _ = invoke(runner, "flow", "--help")
    assert code == 0
    assert "validate" in out
    assert "graph" in out


def test_seed_files_are_valid_with_the_builtin_tasks(runner: CliRunner) -> None:
    tasks = pytest.importorskip("mfo_client.flows.tasks")
    if not hasattr(tasks, "builtin_registry"):
        pytest.skip("the built-in task types are not written yet")
    code, out, err = invoke(runner, "flow", "validate", SAMPLE, PIPELINE)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{SAMPLE}: ok (2 tasks)", f"{PIPELINE}: ok (4 tasks)"]
