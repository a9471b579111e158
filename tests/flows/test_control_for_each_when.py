"""`when:` on a `for_each` task: a condition reading `item` or `index` filters the items; any
other condition gates the whole task, before its list is evaluated."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from mfo_client.flows import (
    FlowContext,
    FlowExecutor,
    RunStatus,
    TaskCallable,
    TaskRegistry,
    TaskStatus,
    build_flow,
    parse_flow,
)


class Echo:
    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.registry = TaskRegistry()
        self.registry.register("echo", self.echo)

    def echo(self, config: Mapping[str, Any]) -> TaskCallable:
        async def run(ctx: FlowContext) -> dict[str, Any]:
            self.seen.append(ctx.get("item"))
            return {"value": config.get("value")}

        return run

    async def run(self, text: str, initial: Mapping[str, Any]) -> Any:
        definition = build_flow(parse_flow(text, "flow.yaml"), self.registry).definition
        executor = FlowExecutor(self.registry)
        try:
            return await executor.execute_flow(definition, initial)
        finally:
            executor.close()


def each(when: str) -> str:
    return textwrap.dedent(
        f"""\
        name: each
        tasks:
          - id: greet
            type: echo
            for_each: "input.people"
            when: "{when}"
            config: {{value: "hello {{{{ item.name }}}}"}}
            successors: [last]
          - id: last
            type: echo
            config: {{value: "{{{{ greet.results | reject('none') | list | length }}}}"}}
        """
    )


PEOPLE = {
    "input": {
        "people": [
            {"name": "ann", "active": True},
            {"name": "bob", "active": False},
            {"name": "cy", "active": True},
        ]
    }
}


async def test_a_when_reading_the_item_skips_the_items_it_is_false_for() -> None:
    echo = Echo()
    result = await echo.run(each("item.active"), PEOPLE)

    assert result.status is RunStatus.SUCCEEDED
    assert [item["name"] for item in echo.seen[:2]] == ["ann", "cy"]
    # Results stay aligned with the items: a skipped item's entry is None.
    assert result.tasks["greet"].outputs == {
        "results": [{"value": "hello ann"}, None, {"value": "hello cy"}]
    }
    assert result.tasks["last"].outputs["value"] == 2


async def test_a_when_reading_the_index_filters_by_position() -> None:
    echo = Echo()
    result = await echo.run(each("index != 1"), PEOPLE)

    assert result.tasks["greet"].outputs["results"][1] is None
    assert result.tasks["greet"].outputs["results"][2] == {"value": "hello cy"}


async def test_a_task_whose_when_skips_every_item_still_succeeds_and_runs_downstream() -> None:
    echo = Echo()
    result = await echo.run(each("item.name == 'nobody'"), PEOPLE)

    assert result.tasks["greet"].status is TaskStatus.SUCCEEDED
    assert result.tasks["greet"].outputs == {"results": [None, None, None]}
    assert result.tasks["last"].status is TaskStatus.SUCCEEDED


async def test_a_when_not_reading_the_item_gates_the_task_before_its_list_is_read() -> None:
    echo = Echo()
    # `input.people` is missing: the list is never evaluated because the gate is false.
    result = await echo.run(each("input.people is defined"), {"input": {}})

    assert result.status is RunStatus.SUCCEEDED
    assert result.tasks["greet"].status is TaskStatus.SKIPPED
    assert result.tasks["greet"].error == "skipped: when-condition is false"
    assert result.tasks["last"].status is TaskStatus.SKIPPED
    assert echo.seen == []


async def test_a_per_item_when_that_fails_fails_the_task_naming_the_item() -> None:
    echo = Echo()
    result = await echo.run(each("item.enabled"), PEOPLE)

    assert result.status is RunStatus.FAILED
    error = result.tasks["greet"].error or ""
    assert error.startswith("for_each item 0: tasks[greet].when: ")
    assert 'undefined variable "item.enabled"' in error
    assert echo.seen == []
