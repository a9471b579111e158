"""From a valid definition to a flow ready to run, with each task's config checked by its type.

Building is where a definition meets the registry: unknown task types, configs a task type
refuses, broken templates and broken `when` conditions are found here, before any task runs,
and are raised together as one `FlowDefinitionError` like the loader's problems. Each factory
is called once with the task's config as written (templates unrendered); the executor calls it
again with the rendered config just before the task runs.

A factory's error becomes one problem per line: a pydantic `ValidationError` one per error, an
error carrying `problems` as `(key path, message)` pairs (the built-in tasks' config error) one
per pair, any other `ValueError` or `TaskError` one for the config as a whole.

Warnings do not stop a build: a task named `input` or `event` (`RESERVED_INPUTS`) is fine for
`mfo flow run` without those inputs, but a trigger's default initial context has both, and a
run whose initial context has a key named like a task refuses to start (see the executor).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from graphlib import TopologicalSorter
from types import MappingProxyType
from typing import Any, cast

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from mfo_client.config._messages import describe
from mfo_client.config._unknown import closest
from mfo_client.flows._control import (
    CONDITION,
    CONSTRUCTS,
    MAX_SUBFLOW_DEPTH,
    ConditionConfig,
    SubflowConfig,
    child_definition,
    child_path,
)
from mfo_client.flows._definition import FlowDefinition, TaskDefinition
from mfo_client.flows._errors import (
    FlowDefinitionError,
    FlowProblem,
    TaskError,
    UnknownTaskTypeError,
)
from mfo_client.flows._loader import graph_problems
from mfo_client.flows._registry import TaskCallable, TaskRegistry

__all__ = ["RESERVED_INPUTS", "BuiltFlow", "build_flow"]

RESERVED_INPUTS = ("event", "input")
"""Top-level keys of the initial context a trigger gives a flow by default (`triggers`)."""

_TEMPLATES = "mfo_client.flows._templates"
_EXPRESSIONS = "mfo_client.flows._expressions"
_TemplateCheck = Callable[[Mapping[str, Any]], list[str]]
"""Messages for the config's broken templates, each starting with its key path and ": "."""
_ExpressionCheck = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class BuiltFlow:
    """A definition whose graph and task configs are known to be good."""

    definition: FlowDefinition
    predecessors: Mapping[str, frozenset[str]]
    """Each task's direct predecessors, successors and dependencies merged."""
    order: tuple[str, ...]
    """Every task id once, each after all its predecessors; file order among tasks of a level."""
    callables: Mapping[str, TaskCallable]
    """What each task's factory returned at build time, from the config as written."""
    warnings: tuple[FlowProblem, ...] = ()
    """What may go wrong though the flow is valid (a task named like a trigger's input)."""

    @property
    def name(self) -> str:
        return self.definition.name

    def task(self, task_id: str) -> TaskDefinition:
        return self.definition.task(task_id)


def build_flow(definition: FlowDefinition, registry: TaskRegistry) -> BuiltFlow:
    """Check the graph, look up every task type and call each factory once with its config.

    `condition` and `subflow` tasks are checked here too: a condition's branches must name its
    successors, and a subflow's child flow is loaded and built in turn (at most
    `MAX_SUBFLOW_DEPTH` deep; a file that includes itself is refused). Raises
    `FlowDefinitionError` listing every problem, each at its task's line.
    """
    source = definition.source
    files = () if source.startswith("<") else (os.path.realpath(source),)
    built = _build(definition, registry, files, 0)
    warnings = tuple(
        FlowProblem(
            source,
            f'a task named "{task.id}" hides the initial context\'s key "{task.id}", which a '
            "trigger gives every flow by default: such a run refuses to start; rename the task",
            definition.lines.get(task.id),
            f"tasks[{task.id}].id",
        )
        for task in definition.tasks
        if task.id in RESERVED_INPUTS
    )
    return dataclasses.replace(built, warnings=warnings) if warnings else built


def _build(
    definition: FlowDefinition, registry: TaskRegistry, files: tuple[str, ...], depth: int
) -> BuiltFlow:
    problems = graph_problems(definition)
    check_templates = cast(_TemplateCheck | None, _optional(_TEMPLATES, "check_templates"))
    check_expression = cast(_ExpressionCheck | None, _optional(_EXPRESSIONS, "check_expression"))
    callables: dict[str, TaskCallable] = {}
    for task in definition.tasks:
        spot = _Spot(definition.source, definition.lines.get(task.id), f"tasks[{task.id}]")
        if check_expression is not None and task.when is not None:
            message = check_expression(task.when)
            if message is not None:
                problems.append(spot.problem("when", message))
        if check_expression is not None and task.for_each is not None:
            message = check_expression(task.for_each)
            if message is not None:
                problems.append(spot.problem("for_each", message))
        if task.type in CONSTRUCTS:
            problems += _construct_problems(
                definition, task, spot, registry, files, depth, check_expression, check_templates
            )
            continue
        if check_templates is not None:
            problems += [spot.keyed_problem(message) for message in check_templates(task.config)]
        try:
            factory = registry.get(task.type)
        except UnknownTaskTypeError as exc:
            problems.append(spot.problem("type", _unknown_type_message(exc)))
            continue
        try:
            # A copy, so a factory that edits its config cannot change the definition.
            callables[task.id] = factory(dict(task.config))
        except ValidationError as exc:
            problems += [
                spot.problem(_path_text(("config", *error["loc"])), _config_message(error))
                for error in exc.errors(include_url=False)
            ]
        except (TaskError, ValueError) as exc:
            problems += _refusal_problems(spot, exc)
    if problems:
        raise FlowDefinitionError(sorted(problems, key=lambda problem: problem.line or 0))

    predecessors = definition.predecessors()
    return BuiltFlow(
        definition=definition,
        predecessors=MappingProxyType({k: frozenset(v) for k, v in predecessors.items()}),
        order=_run_order(definition, predecessors),
        callables=MappingProxyType(callables),
    )


def _construct_problems(
    definition: FlowDefinition,
    task: TaskDefinition,
    spot: _Spot,
    registry: TaskRegistry,
    files: tuple[str, ...],
    depth: int,
    check_expression: _ExpressionCheck | None,
    check_templates: _TemplateCheck | None,
) -> list[FlowProblem]:
    model = ConditionConfig if task.type == CONDITION else SubflowConfig
    try:
        config = model.model_validate(task.config)
    except ValidationError as exc:
        return [
            spot.problem(_path_text(("config", *error["loc"])), _config_message(error))
            for error in exc.errors(include_url=False)
        ]
    if isinstance(config, ConditionConfig):
        return _condition_problems(definition, task, config, spot, check_expression)
    problems: list[FlowProblem] = []
    if check_templates is not None:
        problems += [
            spot.keyed_problem(message) for message in check_templates({"input": config.input})
        ]
    if depth + 1 > MAX_SUBFLOW_DEPTH:
        message = f"subflows nest more than {MAX_SUBFLOW_DEPTH} deep"
        return [*problems, spot.problem("config", message)]
    try:
        child = child_definition(definition, task, config)
    except FlowDefinitionError as exc:
        return problems + exc.problems
    inner = files
    if config.file is not None:
        path = os.path.realpath(child_path(definition, config.file))
        if path in files:
            chain = " -> ".join(os.path.basename(file) for file in (*files, path))
            return [*problems, spot.problem("config.file", f"the subflows form a cycle: {chain}")]
        inner = (*files, path)
    if any(child_task.id == "status" for child_task in child.tasks):
        message = "a subflow's task cannot be called \"status\": that is the subflow's own output"
        problems.append(spot.problem("config", message))
    try:
        _build(child, registry, inner, depth + 1)
    except FlowDefinitionError as exc:
        problems += exc.problems
    return problems


def _condition_problems(
    definition: FlowDefinition,
    task: TaskDefinition,
    config: ConditionConfig,
    spot: _Spot,
    check_expression: _ExpressionCheck | None,
) -> list[FlowProblem]:
    problems: list[FlowProblem] = []
    if task.for_each is not None:
        problems.append(spot.problem("for_each", "a condition task cannot have for_each"))
    if check_expression is not None:
        message = check_expression(config.expression)
        if message is not None:
            problems.append(spot.problem("config.expression", message))
    successors = [tid for tid, preds in definition.predecessors().items() if task.id in preds]
    named: set[str] = set()
    for key, position, target in config.targets():
        named.add(target)
        if target not in successors:
            listed = ", ".join(successors) or "none"
            message = f'"{target}" is not a successor of this condition; its successors: {listed}'
            problems.append(spot.problem(f"config.{key}[{position}]", message))
    for successor in successors:
        if successor not in named:
            message = (
                f'successor "{successor}" is in no branch and not in default, so it would '
                "never run; add it to a branch or to default"
            )
            problems.append(spot.problem("config", message))
    return problems


def _optional(module_name: str, name: str) -> object | None:
    """A checker from the template engine, which ships apart from the loader; None without it.

    A flow then still builds, and a broken template or condition fails when its task runs.
    """
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the module is there but one of its own imports is broken
        return None
    found = getattr(module, name, None)
    return found if callable(found) else None


def _run_order(definition: FlowDefinition, predecessors: Mapping[str, set[str]]) -> tuple[str, ...]:
    position = {task.id: index for index, task in enumerate(definition.tasks)}
    sorter = TopologicalSorter(predecessors)
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order += ready
        sorter.done(*ready)
    return tuple(order)


def _unknown_type_message(exc: UnknownTaskTypeError) -> str:
    suggestion = closest(exc.type_name, exc.known)
    hint = f' (did you mean "{suggestion}"?)' if suggestion else ""
    known = ", ".join(exc.known) or "none"
    return f'unknown task type "{exc.type_name}"{hint}; registered types: {known}'


def _config_message(error: ErrorDetails) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key for this task type"
    return describe(error)


def _refusal_problems(spot: _Spot, exc: TaskError | ValueError) -> list[FlowProblem]:
    message = exc.message if isinstance(exc, TaskError) else str(exc)
    pairs = getattr(exc, "problems", None)
    if isinstance(pairs, list) and pairs and all(_is_pair(pair) for pair in pairs):
        # What follows the listed pairs in the message is a hint for them all ("; allowed
        # keys: ..."); it is kept on the unknown-key problems it explains.
        listed = "; ".join(f"{path}: {text}" if path else text for path, text in pairs)
        hint = message.partition(listed)[2] if listed in message else ""
        return [
            spot.problem(
                _path_text(("config", path)) if path else "config",
                f"{text}{hint}" if text.startswith("unknown key") else text,
            )
            for path, text in pairs
        ]
    key = exc.details.get("key") if isinstance(exc, TaskError) else None
    path = _path_text(("config", key)) if isinstance(key, str) else "config"
    return [spot.problem(path, _one_line(message, exc))]


def _is_pair(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(part, str) for part in value)
    )


def _one_line(message: str, exc: Exception) -> str:
    text = "; ".join(line.strip() for line in message.splitlines() if line.strip())
    return text or f"the task type refused this config ({type(exc).__name__})"


def _path_text(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


@dataclass(frozen=True, slots=True)
class _Spot:
    source: str
    line: int | None
    task_path: str

    def problem(self, path: str, message: str) -> FlowProblem:
        return FlowProblem(self.source, message, self.line, f"{self.task_path}.{path}")

    def keyed_problem(self, message: str) -> FlowProblem:
        """A message led by its own key path (`config.url: ...`), which becomes the path."""
        path, separator, rest = message.partition(": ")
        if separator and path.startswith("config"):
            return self.problem(path, rest)
        return FlowProblem(self.source, message, self.line, self.task_path)
