"""`subflow` tasks: another flow (a file or inline tasks) run with an input, outputs returned."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Mapping
from pathlib import Path
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
    load_flow,
    parse_flow,
)


def echo(config: Mapping[str, Any]) -> TaskCallable:
    async def run(ctx: FlowContext) -> dict[str, Any]:
        await asyncio.sleep(0)
        if config.get("fail"):
            raise TaskError(str(config["fail"]))
        return {"value": config.get("value")}

    return run


REGISTRY = TaskRegistry()
REGISTRY.register("echo", echo)

INLINE = textwrap.dedent(
    """\
    name: parent
    tasks:
      - id: start
        type: echo
        config: {value: 21}
        successors: [double]
      - id: double
        type: subflow
        config:
          input: {n: "{{ start.value }}", who: "{{ input.who }}"}
          tasks:
            - id: times_two
              type: echo
              config: {value: "{{ n * 2 }}"}
              successors: [greet]
            - id: greet
              type: echo
              config: {value: "hi {{ who }}: {{ times_two.value }}"}
        successors: [report]
      - id: report
        type: echo
        config: {value: "{{ double.greet.value }} ({{ double.status }})"}
    """
)


async def test_inline_tasks_run_with_the_rendered_input_and_return_their_outputs() -> None:
    definition = build_flow(parse_flow(INLINE, "flow.yaml"), REGISTRY).definition
    result = await FlowExecutor(REGISTRY).execute_flow(definition, {"input": {"who": "ann"}})

    assert result.status is RunStatus.SUCCEEDED
    assert result.tasks["double"].outputs == {
        "times_two": {"value": 42},
        "greet": {"value": "hi ann: 42"},
        "status": "succeeded",
    }
    assert result.tasks["report"].outputs == {"value": "hi ann: 42 (succeeded)"}


async def test_a_failed_child_fails_the_subflow_task_with_its_error() -> None:
    text = INLINE.replace('config: {value: "{{ n * 2 }}"}', "config: {fail: out of paper}")
    definition = build_flow(parse_flow(text, "flow.yaml"), REGISTRY).definition
    result = await FlowExecutor(REGISTRY).execute_flow(definition, {"input": {"who": "ann"}})

    assert result.status is RunStatus.FAILED
    assert result.tasks["double"].error == "subflow failed: times_two: out of paper"
    assert result.tasks["report"].status is TaskStatus.SKIPPED


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


async def test_nested_file_subflows_finish_at_concurrency_one(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    write(
        tmp_path / "lib" / "inner.yaml",
        """\
        name: inner
        tasks:
          - id: deepest
            type: subflow
            config:
              input: {x: "{{ x }}"}
              tasks:
                - id: leaf
                  type: echo
                  config: {value: "leaf {{ x }}"}
        """,
    )
    write(
        tmp_path / "lib" / "middle.yaml",
        """\
        name: middle
        tasks:
          - id: inner
            type: subflow
            config: {file: inner.yaml, input: {x: "{{ x }}"}}
          - id: beside
            type: echo
            config: {value: beside}
        """,
    )
    parent = write(
        tmp_path / "parent.yaml",
        """\
        name: parent
        tasks:
          - id: middle
            type: subflow
            config: {file: lib/middle.yaml, input: {x: "{{ input.x }}"}}
          - id: other
            type: echo
        """,
    )
    definition = build_flow(load_flow(parent), REGISTRY).definition
    executor = FlowExecutor(REGISTRY, concurrency=1)

    async with asyncio.timeout(5):
        result = await executor.execute_flow(definition, {"input": {"x": 7}})

    assert result.status is RunStatus.SUCCEEDED
    assert result.tasks["middle"].outputs == {
        "inner": {
            "deepest": {"leaf": {"value": "leaf 7"}, "status": "succeeded"},
            "status": "succeeded",
        },
        "beside": {"value": "beside"},
        "status": "succeeded",
    }


def problems_of(path: Path) -> list[str]:
    with pytest.raises(FlowDefinitionError) as caught:
        build_flow(load_flow(path), REGISTRY)
    return [str(problem).replace(f"{path.parent}/", "") for problem in caught.value.problems]


def test_a_missing_file_and_a_broken_inline_task_are_found_at_build(tmp_path: Path) -> None:
    path = write(
        tmp_path / "flow.yaml",
        """\
        name: parent
        tasks:
          - id: missing
            type: subflow
            config: {file: nowhere.yaml}
          - id: inline
            type: subflow
            config:
              tasks:
                - id: fine
                  type: echo
                - id: typo
                  type: ecco
          - id: both
            type: subflow
            config: {file: a.yaml, tasks: [{id: x, type: echo}]}
        """,
    )

    assert problems_of(path) == [
        'flow.yaml:3: tasks[missing].config.file: no flow file "nowhere.yaml" '
        "(looked for nowhere.yaml)",
        'flow.yaml:12: tasks[typo].type: unknown task type "ecco" (did you mean "echo"?); '
        "registered types: echo",
        "flow.yaml:14: tasks[both].config: give either file (another flow file) or tasks "
        "(inline), not both",
    ]


def test_a_file_that_includes_itself_is_a_cycle(tmp_path: Path) -> None:
    write(
        tmp_path / "b.yaml",
        """\
        name: b
        tasks:
          - id: back
            type: subflow
            config: {file: a.yaml}
        """,
    )
    path = write(
        tmp_path / "a.yaml",
        """\
        name: a
        tasks:
          - id: to_b
            type: subflow
            config: {file: b.yaml}
        """,
    )

    assert problems_of(path) == [
        "b.yaml:3: tasks[back].config.file: the subflows form a cycle: a.yaml -> b.yaml -> a.yaml",
    ]


def test_subflows_nest_at_most_ten_deep(tmp_path: Path) -> None:
    for level in range(11):
        write(
            tmp_path / f"level{level}.yaml",
            f"""\
            name: level{level}
            tasks:
              - id: down
                type: subflow
                config: {{file: level{level + 1}.yaml}}
            """,
        )
    write(tmp_path / "level11.yaml", "name: leaf\ntasks: [{id: leaf, type: echo}]\n")

    assert problems_of(tmp_path / "level0.yaml") == [
        "level10.yaml:3: tasks[down].config: subflows nest more than 10 deep",
    ]
    build_flow(load_flow(tmp_path / "level1.yaml"), REGISTRY)  # ten levels are fine
