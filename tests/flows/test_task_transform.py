"""`data_transform_task`: its input (source, upstream) and its four ways to transform."""

from __future__ import annotations

from typing import Any

import pytest

from mfo_client.flows._context import FlowClients, FlowContext, TaskInfo
from mfo_client.flows._errors import TaskError
from mfo_client.flows.tasks import TaskConfigError, builtin_registry

FETCHED = {
    "status": 200,
    "headers": {"content-type": "application/json"},
    "body": {"items": [{"id": "a", "price": 2}, {"id": "b", "price": 3}], "owner": "o-1"},
    "url": "https://api.external.com/data/d-1",
}
DATA = {"input": {"dataID": "d-1"}, "fetch": FETCHED, "other": {"output": [1, 2]}}


def make_ctx(
    dependencies: tuple[str, ...] = ("fetch",), settings: dict[str, Any] | None = None
) -> FlowContext:
    info = TaskInfo(
        id="transform",
        name="transform",
        type="data_transform_task",
        attempt=1,
        dependencies=dependencies,
        flow="f",
        run_id="r1",
    )
    return FlowContext(
        DATA, info, FlowClients(settings=settings or {}), initial={"input": DATA["input"]}
    )


def transform(config: dict[str, Any], ctx: FlowContext | None = None) -> Any:
    outputs = builtin_registry().get("data_transform_task")(config)(ctx or make_ctx())
    assert isinstance(outputs, dict)
    assert list(outputs) == ["output"]
    return outputs["output"]


def test_ruleset_v1_passes_the_fetched_body_through() -> None:
    assert transform({"transformation_rule": "ruleset_v1"}) == FETCHED["body"]


def test_ruleset_v1_passes_input_without_a_body_unchanged() -> None:
    assert transform({"transformation_rule": "ruleset_v1"}, make_ctx(("other",))) == {
        "output": [1, 2]
    }


def test_expressions_build_a_mapping_with_jmespath() -> None:
    config = {
        "expressions": {
            "ids": "body.items[*].id",
            "total": "sum(body.items[*].price)",
            "missing": "body.nope",
        }
    }
    assert transform(config) == {"ids": ["a", "b"], "total": 5, "missing": None}


def test_expression_gives_one_value() -> None:
    assert transform({"expression": "body.items[?price > `2`].id | [0]"}) == "b"


def test_mapping_takes_dotted_paths() -> None:
    config = {"mapping": {"owner": "body.owner", "first": "body.items.0.id", "none": "x.y"}}
    assert transform(config) == {"owner": "o-1", "first": "a", "none": None}


def test_source_picks_the_input_from_the_runs_data() -> None:
    assert transform({"source": "fetch.body.items", "expression": "[*].price"}) == [2, 3]
    assert transform({"source": "input.dataID", "expression": "@"}) == "d-1"


def test_a_missing_source_fails_the_task() -> None:
    with pytest.raises(TaskError, match=r'^source "fetch\.nope" is not in the run\'s data$'):
        transform({"source": "fetch.nope", "expression": "@"})


def test_several_dependencies_give_their_outputs_by_task_id() -> None:
    config = {"expressions": {"n": "other.output | length(@)", "s": "fetch.status"}}
    assert transform(config, make_ctx(("fetch", "other"))) == {"n": 2, "s": 200}


def test_no_dependency_gives_the_runs_initial_input() -> None:
    assert transform({"expression": "input.dataID"}, make_ctx(())) == "d-1"


def test_rule_sets_come_from_the_settings_and_replace_builtins() -> None:
    settings = {
        "transformation_rules": {
            "prices": {"expressions": {"prices": "body.items[*].price"}},
            "ruleset_v1": {"expression": "url"},
        }
    }
    ctx = make_ctx(settings=settings)
    assert transform({"transformation_rule": "prices"}, ctx) == {"prices": [2, 3]}
    assert transform({"transformation_rule": "ruleset_v1"}, ctx) == FETCHED["url"]


def test_an_unknown_rule_lists_the_known_ones() -> None:
    ctx = make_ctx(settings={"transformation_rules": {"prices": {"expression": "@"}}})
    with pytest.raises(TaskError) as info:
        transform({"transformation_rule": "ruleset_v2"}, ctx)
    assert str(info.value) == (
        'unknown transformation rule "ruleset_v2"; known rules: prices, ruleset_v1 '
        "(define more under transformation_rules in the task settings)"
    )


def test_an_invalid_rule_in_the_settings_fails_the_task_naming_it() -> None:
    ctx = make_ctx(settings={"transformation_rules": {"bad": {"expression": "a.["}}})
    with pytest.raises(TaskConfigError) as info:
        transform({"transformation_rule": "bad"}, ctx)
    assert str(info.value) == (
        'invalid config for transformation rule "bad": expression: not a valid JMESPath '
        'expression: "a.[" (incomplete expression)'
    )


def test_a_jmespath_error_at_run_time_fails_the_task() -> None:
    with pytest.raises(TaskError) as info:
        transform({"expression": "sum(body.owner)"})
    assert str(info.value).startswith('JMESPath expression "sum(body.owner)" failed: ')
