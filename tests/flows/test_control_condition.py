"""`condition` tasks: the chosen branch runs, the others are skipped, and that skip spreads."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import pytest

from mfo_client.flows import (
    FlowContext,
    FlowDefinitionError,
    FlowExecutor,
    RunStatus,
    TaskCallable,
    TaskRegistry,
    TaskStatus,
    build_flow,
    parse_flow,
)


def echo(config: Mapping[str, Any]) -> TaskCallable:
    async def run(ctx: FlowContext) -> dict[str, Any]:
        return {"value": config.get("value", ctx.task.id)}

    return run


REGISTRY = TaskRegistry()
REGISTRY.register("echo", echo)

ROUTE = textwrap.dedent(
    """\
    name: route
    tasks:
      - id: check
        type: condition
        config:
          expression: "input.kind"
          branches:
            a: [on_a]
            b: [on_b]
          default: [other]
        successors: [on_a, on_b, other]
      - id: on_a
        type: echo
        successors: [after_a]
      - id: after_a
        type: echo
      - id: on_b
        type: echo
      - id: other
        type: echo
      - id: join
        type: echo
        config: {value: "{{ check.branch }}"}
        dependencies: [on_a, on_b, other]
    """
)


async def run(text: str, initial: Mapping[str, Any]) -> Any:
    definition = build_flow(parse_flow(text, "flow.yaml"), REGISTRY).definition
    return await FlowExecutor(REGISTRY).execute_flow(definition, initial)


def states(result: Any) -> dict[str, tuple[str, str | None]]:
    return {tid: (str(r.status), r.error) for tid, r in result.tasks.items()}


async def test_the_chosen_branch_runs_and_the_others_are_skipped() -> None:
    result = await run(ROUTE, {"input": {"kind": "a"}})

    assert result.status is RunStatus.SUCCEEDED
    assert result.tasks["check"].outputs == {"branch": "a"}
    assert states(result) == {
        "check": ("succeeded", None),
        "on_a": ("succeeded", None),
        "after_a": ("succeeded", None),
        "on_b": ("skipped", "skipped: not the branch chosen by check"),
        "other": ("skipped", "skipped: not the branch chosen by check"),
        "join": ("succeeded", None),
    }
    assert result.tasks["join"].outputs == {"value": "a"}


async def test_no_matching_branch_runs_default_and_the_skip_spreads() -> None:
    result = await run(ROUTE, {"input": {"kind": "zzz"}})

    assert result.tasks["check"].outputs == {"branch": "default"}
    assert result.tasks["other"].status is TaskStatus.SUCCEEDED
    assert states(result)["after_a"] == (
        "skipped",
        "skipped: every upstream task was skipped by its condition",
    )
    assert result.tasks["join"].outputs == {"value": "default"}


BOOLEAN = textwrap.dedent(
    """\
    name: size
    tasks:
      - id: big_enough
        type: condition
        config:
          expression: "input.count > 3"
          branches:
            true: [big]
            false: [small]
        successors: [big, small]
      - id: big
        type: echo
      - id: small
        type: echo
    """
)


@pytest.mark.parametrize(("count", "branch", "ran"), [(5, "true", "big"), (1, "false", "small")])
async def test_yaml_true_and_false_keys_match_a_boolean_expression(
    count: int, branch: str, ran: str
) -> None:
    result = await run(BOOLEAN, {"input": {"count": count}})

    assert result.tasks["big_enough"].outputs == {"branch": branch}
    assert [tid for tid, r in result.tasks.items() if r.status is TaskStatus.SUCCEEDED] == [
        "big_enough",
        ran,
    ]


async def test_an_expression_that_fails_fails_the_condition_and_skips_every_branch() -> None:
    result = await run(BOOLEAN, {"input": {}})

    assert result.status is RunStatus.FAILED
    assert result.tasks["big_enough"].status is TaskStatus.FAILED
    assert "input.count" in (result.tasks["big_enough"].error or "")
    assert states(result)["big"] == ("skipped", "skipped: an upstream task did not succeed")


def build_problems(text: str) -> list[str]:
    with pytest.raises(FlowDefinitionError) as caught:
        build_flow(parse_flow(text, "flow.yaml"), REGISTRY)
    return [str(problem) for problem in caught.value.problems]


def test_branches_must_name_successors_and_every_successor_needs_a_branch() -> None:
    text = textwrap.dedent(
        """\
        name: bad
        tasks:
          - id: start
            type: echo
            successors: [check]
          - id: check
            type: condition
            config:
              expression: "input.kind =="
              branches:
                a: [left, start]
            successors: [left, right]
          - id: left
            type: echo
          - id: right
            type: echo
        """
    )

    assert build_problems(text) == [
        "flow.yaml:6: tasks[check].config.expression: expression syntax error: "
        "unexpected 'end of template'",
        'flow.yaml:6: tasks[check].config.branches.a[1]: "start" is not a successor of this '
        "condition; its successors: left, right",
        'flow.yaml:6: tasks[check].config: successor "right" is in no branch and not in default, '
        "so it would never run; add it to a branch or to default",
    ]


def test_a_condition_config_is_checked_like_any_task_config() -> None:
    text = textwrap.dedent(
        """\
        name: bad
        tasks:
          - id: check
            type: condition
            config: {branches: {a: x}, colour: red}
        """
    )

    assert build_problems(text) == [
        "flow.yaml:3: tasks[check].config.expression: required, but not set",
        'flow.yaml:3: tasks[check].config.branches.a: must be a list, got "x"',
        "flow.yaml:3: tasks[check].config.colour: unknown key for this task type",
    ]


def test_graphs_label_branch_edges_and_show_the_expression() -> None:
    from mfo_client.flows import to_dot, to_mermaid

    definition = parse_flow(BOOLEAN, "flow.yaml")

    assert to_mermaid(definition).splitlines()[4:] == [
        '    big_enough["big_enough<br/>condition<br/>if: input.count #gt; 3"]',
        '    big["big<br/>echo"]',
        '    small["small<br/>echo"]',
        '    big_enough -->|"true"| big',
        '    big_enough -->|"false"| small',
    ]
    assert to_dot(definition).splitlines()[-3:] == [
        '    "big_enough" -> "big" [label="true"];',
        '    "big_enough" -> "small" [label="false"];',
        "}",
    ]
