"""Building a loaded flow against a registry: task types and configs checked, all at once."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from mfo_client.flows._build import BuiltFlow, build_flow
from mfo_client.flows._context import FlowContext
from mfo_client.flows._definition import FlowDefinition, TaskDefinition
from mfo_client.flows._errors import FlowDefinitionError, TaskError
from mfo_client.flows._loader import load_flow, parse_flow
from mfo_client.flows._registry import TaskCallable, TaskRegistry

FLOWS = Path(__file__).parent.parent / "data" / "flows"
SEED_TYPES = [
    "data_transform_task",
    "http_get_task",
    "mfo_chat_send_task",
    "mfo_resource_create_task",
    "simple_log_task",
    "system_notify_task",
]


def noop(ctx: FlowContext) -> None:
    return None


def accept_anything(config: Mapping[str, Any]) -> TaskCallable:
    return noop


def registry_of(**factories: Any) -> TaskRegistry:
    registry = TaskRegistry()
    for name, factory in factories.items():
        registry.register(name, factory)
    return registry


def seed_registry() -> TaskRegistry:
    return registry_of(**dict.fromkeys(SEED_TYPES, accept_anything))


def build_problems(text: str, registry: TaskRegistry) -> list[str]:
    definition = parse_flow(textwrap.dedent(text), "flow.yaml")
    with pytest.raises(FlowDefinitionError) as caught:
        build_flow(definition, registry)
    return [str(problem) for problem in caught.value.problems]


class HttpGetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    timeout: float = 10.0


def http_get(config: Mapping[str, Any]) -> TaskCallable:
    HttpGetConfig.model_validate(config)
    return noop


class ConfigProblems(TaskError, ValueError):
    """Shaped like the built-in tasks' config error: `(key path, message)` pairs and a hint."""

    def __init__(self, problems: list[tuple[str, str]], hint: str = "") -> None:
        self.problems = problems
        listed = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
        super().__init__(f"invalid config for notify: {listed}{hint}")


def notify(config: Mapping[str, Any]) -> TaskCallable:
    raise ConfigProblems(
        [("recipient", "required, but not set"), ("recipent", "unknown key")],
        "; allowed keys: recipient, message_template",
    )


# --- the seed files -------------------------------------------------------------------------


def test_data_pipeline_builds_in_chain_order() -> None:
    built = build_flow(load_flow(FLOWS / "data_pipeline_flow.yaml"), seed_registry())
    assert isinstance(built, BuiltFlow)
    assert built.name == "DataIngestionPipeline"
    assert built.order == (
        "fetch_external_data",
        "transform_fetched_data",
        "store_data_mfo",
        "notify_completion_mfo",
    )
    assert built.predecessors == {
        "fetch_external_data": frozenset(),
        "transform_fetched_data": frozenset({"fetch_external_data"}),
        "store_data_mfo": frozenset({"transform_fetched_data"}),
        "notify_completion_mfo": frozenset({"store_data_mfo"}),
    }
    assert set(built.callables) == set(built.order)
    assert built.task("store_data_mfo").type == "mfo_resource_create_task"


def test_each_factory_is_called_once_with_a_copy_of_its_config() -> None:
    calls: list[dict[str, Any]] = []

    def recording(config: Mapping[str, Any]) -> TaskCallable:
        assert isinstance(config, dict)
        calls.append(config)
        config.clear()  # must not reach the definition
        return noop

    definition = load_flow(FLOWS / "sample_flow.yaml")
    registry = registry_of(system_notify_task=recording, simple_log_task=recording)
    built = build_flow(definition, registry)
    assert len(calls) == 2
    assert built.order == ("send_notification_task", "log_event_task")
    assert built.predecessors["log_event_task"] == frozenset({"send_notification_task"})
    assert definition.tasks[0].config["recipient"] == "admin@example.com"


def test_order_keeps_file_order_among_tasks_ready_together() -> None:
    definition = parse_flow(
        textwrap.dedent(
            """\
            name: f
            tasks:
              - {id: z, type: t, dependencies: [b, a]}
              - {id: b, type: t}
              - {id: a, type: t}
              - {id: c, type: t, successors: [z]}
            """
        )
    )
    built = build_flow(definition, registry_of(t=accept_anything))
    assert built.order == ("b", "a", "c", "z")


# --- problems -------------------------------------------------------------------------------


def test_unknown_task_type_lists_the_registered_types() -> None:
    text = """\
        name: f
        tasks:
          - id: fetch
            type: http_get
          - id: other
            type: carrier_pigeon
        """
    assert build_problems(text, seed_registry()) == [
        'flow.yaml:3: tasks[fetch].type: unknown task type "http_get" (did you mean '
        '"http_get_task"?); registered types: ' + ", ".join(SEED_TYPES),
        'flow.yaml:5: tasks[other].type: unknown task type "carrier_pigeon"; registered types: '
        + ", ".join(SEED_TYPES),
    ]


def test_unknown_task_type_with_nothing_registered() -> None:
    assert build_problems("name: f\ntasks:\n  - {id: a, type: t}\n", TaskRegistry()) == [
        'flow.yaml:3: tasks[a].type: unknown task type "t"; registered types: none'
    ]


def test_validation_errors_become_one_problem_per_key() -> None:
    text = """\
        name: f
        tasks:
          - id: fetch
            type: http_get_task
            config:
              timeout: soon
              retries: 3
        """
    assert build_problems(text, registry_of(http_get_task=http_get)) == [
        "flow.yaml:3: tasks[fetch].config.url: required, but not set",
        'flow.yaml:3: tasks[fetch].config.timeout: must be a number, got "soon"',
        "flow.yaml:3: tasks[fetch].config.retries: unknown key for this task type",
    ]


def test_problem_pairs_become_one_problem_each_with_the_hint() -> None:
    text = "name: f\ntasks:\n  - {id: n, type: notify, config: {recipent: x}}\n"
    assert build_problems(text, registry_of(notify=notify)) == [
        "flow.yaml:3: tasks[n].config.recipient: required, but not set",
        "flow.yaml:3: tasks[n].config.recipent: unknown key; allowed keys: recipient, "
        "message_template",
    ]


def test_value_and_task_errors_become_one_line() -> None:
    def value_error(config: Mapping[str, Any]) -> TaskCallable:
        raise ValueError("level must be one of DEBUG, INFO\n  got: LOUD")

    def task_error(config: Mapping[str, Any]) -> TaskCallable:
        raise TaskError("must be a resource type the server knows", key="resource_type")

    def bare(config: Mapping[str, Any]) -> TaskCallable:
        raise ValueError

    text = """\
        name: f
        tasks:
          - {id: a, type: log}
          - {id: b, type: store}
          - {id: c, type: bare}
        """
    registry = registry_of(log=value_error, store=task_error, bare=bare)
    assert build_problems(text, registry) == [
        "flow.yaml:3: tasks[a].config: level must be one of DEBUG, INFO; got: LOUD",
        "flow.yaml:4: tasks[b].config.resource_type: must be a resource type the server knows",
        "flow.yaml:5: tasks[c].config: the task type refused this config (ValueError)",
    ]


def test_other_factory_failures_are_bugs_and_propagate() -> None:
    def buggy(config: Mapping[str, Any]) -> TaskCallable:
        raise KeyError("url")

    definition = parse_flow("name: f\ntasks:\n  - {id: a, type: buggy}\n")
    with pytest.raises(KeyError):
        build_flow(definition, registry_of(buggy=buggy))


def test_all_build_problems_are_reported_together() -> None:
    text = """\
        name: f
        tasks:
          - id: fetch
            type: http_get_task
            config: {url: 5}
          - id: log
            type: log_task
          - id: notify
            type: notify
        """
    assert build_problems(text, registry_of(http_get_task=http_get, notify=notify)) == [
        "flow.yaml:3: tasks[fetch].config.url: must be a string, got 5 (quote the value in YAML)",
        'flow.yaml:6: tasks[log].type: unknown task type "log_task"; registered types: '
        "http_get_task, notify",
        "flow.yaml:8: tasks[notify].config.recipient: required, but not set",
        "flow.yaml:8: tasks[notify].config.recipent: unknown key; allowed keys: recipient, "
        "message_template",
    ]


def test_a_definition_made_in_python_gets_the_graph_checks() -> None:
    definition = FlowDefinition(
        name="f",
        tasks=[
            TaskDefinition(id="a", type="t", successors=["b"]),
            TaskDefinition(id="b", type="t", successors=["a", "c"]),
        ],
    )
    with pytest.raises(FlowDefinitionError) as caught:
        build_flow(definition, registry_of(t=accept_anything))
    assert [str(p) for p in caught.value.problems] == [
        '<flow>: tasks[b].successors[1]: successor "c" is not a task of this flow; its tasks '
        "are: a, b",
        "<flow>: tasks[a]: the tasks form a cycle: a -> b -> a (each waits for the one before it)",
    ]


# --- templates and conditions (checked by the template engine, when it is installed) ---------


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **functions: Any) -> None:
    module = types.ModuleType(name)
    for attribute, function in functions.items():
        setattr(module, attribute, function)
    monkeypatch.setitem(sys.modules, name, module)


def test_template_and_condition_problems_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def check_templates(config: Mapping[str, Any]) -> list[str]:
        return [f"config.{key}: template syntax error" for key in config if "{{" in config[key]]

    def check_expression(expression: str) -> str | None:
        return "expression syntax error" if expression.endswith("==") else None

    fake_module(monkeypatch, "mfo_client.flows._templates", check_templates=check_templates)
    fake_module(monkeypatch, "mfo_client.flows._expressions", check_expression=check_expression)
    text = """\
        name: f
        tasks:
          - id: a
            type: t
            when: input.x ==
            config: {url: "{{ oops", ok: plain}
          - id: b
            type: t
            when: input.x == 1
        """
    assert build_problems(text, registry_of(t=accept_anything)) == [
        "flow.yaml:3: tasks[a].when: expression syntax error",
        "flow.yaml:3: tasks[a].config.url: template syntax error",
    ]


def test_without_the_template_engine_templates_are_not_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mfo_client.flows._templates", None)
    monkeypatch.setitem(sys.modules, "mfo_client.flows._expressions", None)
    definition = parse_flow(
        'name: f\ntasks:\n  - {id: a, type: t, when: "x ==", config: {url: "{{ oops"}}\n'
    )
    assert build_flow(definition, registry_of(t=accept_anything)).order == ("a",)
