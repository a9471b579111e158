"""`for_each`: a task once per item, `item` and `index` in its templates, bounded parallelism."""

from __future__ import annotations

import asyncio
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
    TaskError,
    TaskRegistry,
    TaskStatus,
    build_flow,
    parse_flow,
)


class Items:
    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.registry = TaskRegistry()
        self.registry.register("echo", self.echo)

    def echo(self, config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> dict[str, Any]:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await asyncio.sleep(float(config.get("sleep", 0)))
            finally:
                self.in_flight -= 1
            if config.get("fail"):
                raise TaskError(f"cannot take {ctx.get('item')}")
            return {"value": config.get("value"), "item": ctx.get("item")}

        return run

    async def run(self, text: str, initial: Mapping[str, Any]) -> Any:
        definition = build_flow(parse_flow(text, "flow.yaml"), self.registry).definition
        return await FlowExecutor(self.registry).execute_flow(definition, initial)


EACH = textwrap.dedent(
    """\
    name: each
    tasks:
      - id: greet
        type: echo
        for_each: "input.names"
        max_parallel: 2
        config: {value: "{{ index }}: hello {{ item }}", sleep: 0.02}
        successors: [last]
      - id: last
        type: echo
        config: {value: "{{ greet.results[-1].value }}"}
    """
)


async def test_each_item_runs_once_and_results_keep_item_order() -> None:
    items = Items()
    result = await items.run(EACH, {"input": {"names": ["ann", "bob", "cy", "di", "ed"]}})

    assert result.status is RunStatus.SUCCEEDED
    assert result.tasks["greet"].outputs == {
        "results": [
            {"value": "0: hello ann", "item": "ann"},
            {"value": "1: hello bob", "item": "bob"},
            {"value": "2: hello cy", "item": "cy"},
            {"value": "3: hello di", "item": "di"},
            {"value": "4: hello ed", "item": "ed"},
        ]
    }
    assert result.tasks["last"].outputs["value"] == "4: hello ed"
    assert items.peak == 2


async def test_an_empty_list_succeeds_with_no_results() -> None:
    result = await Items().run(EACH, {"input": {"names": []}})

    assert result.tasks["greet"].status is TaskStatus.SUCCEEDED
    assert result.tasks["greet"].outputs == {"results": []}


async def test_a_failed_item_fails_the_task_naming_its_index() -> None:
    text = EACH.replace("sleep: 0.02}", "fail: \"{{ item == 'cy' }}\"}")
    result = await Items().run(text, {"input": {"names": ["ann", "bob", "cy", "di"]}})

    assert result.status is RunStatus.FAILED
    assert result.tasks["greet"].error == "for_each item 2: cannot take cy"
    assert result.tasks["last"].status is TaskStatus.SKIPPED


async def test_an_expression_that_is_not_a_list_fails_the_task() -> None:
    result = await Items().run(EACH, {"input": {"names": "ann"}})

    assert result.tasks["greet"].error == "tasks[greet].for_each: must give a list, got str"


def test_for_each_is_checked_when_the_flow_is_built() -> None:
    text = textwrap.dedent(
        """\
        name: bad
        tasks:
          - id: start
            type: echo
          - id: greet
            type: echo
            for_each: "input.names |"
            max_parallel: 0
        """
    )

    with pytest.raises(FlowDefinitionError) as caught:
        build_flow(parse_flow(text, "flow.yaml"), Items().registry)
    assert [str(problem) for problem in caught.value.problems] == [
        "flow.yaml:8: tasks[greet].max_parallel: must be >= 1, got 0",
    ]
    fixed = parse_flow(text.replace("max_parallel: 0", "max_parallel: 1"), "flow.yaml")
    with pytest.raises(FlowDefinitionError) as caught:
        build_flow(fixed, Items().registry)
    assert [str(problem) for problem in caught.value.problems] == [
        "flow.yaml:5: tasks[greet].for_each: expression syntax error: unexpected end of "
        "template, expected 'name'.",
    ]
