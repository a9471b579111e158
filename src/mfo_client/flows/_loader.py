"""From flow YAML to a validated `FlowDefinition`, with every problem located and raised at once.

The steps: parse (remembering the line of every key), refuse unknown keys with a did-you-mean
hint, validate the models, then check the graph (duplicate ids, edges to unknown ids,
self-edges, cycles). The graph is checked on the parsed data, not the model, so a file with one
bad field still gets its graph checked: one run shows everything to fix, in reading order.

The YAML reading is the configuration loader's (`mfo_client.config._yaml`): files go through
`read_yaml` unchanged. `read_yaml` only takes a path, so `parse_flow` repeats its few SafeLoader
lines for text and reuses its line walker and syntax-error wording. Unknown keys are found by
the config loader's walk, with one difference in policy: the config loader drops them with a
warning (newer files must load on older clients), a flow refuses them, since a mistyped
`dependencies` would silently change the order tasks run in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from mfo_client.config import ConfigError
from mfo_client.config._errors import KeyPath
from mfo_client.config._messages import describe, show
from mfo_client.config._schema import keys_of, shape_at
from mfo_client.config._unknown import closest, prune_unknown
from mfo_client.config._yaml import Lines, _record, _syntax_error, read_yaml
from mfo_client.flows._definition import FlowDefinition
from mfo_client.flows._errors import FlowDefinitionError, FlowProblem

__all__ = ["graph_problems", "load_flow", "parse_flow"]

_SET_BY_LOADER = frozenset({"source", "lines"})
_EMPTY_MEANS_DEFAULT = ("config", "successors", "dependencies")
"""Task keys whose YAML null (`config:` with everything below commented out) means "none"."""
_EMPTY_LISTS = ("secrets", "env")
"""Top-level keys whose YAML null means "none", likewise."""
_EDGE_KEYS = ("successors", "dependencies")
_MAX_CYCLES = 10
_MAX_LISTED = 12
_ID_RULE = (
    'must start with a letter or "_" and use only letters, digits, "_" and "-" '
    '(a "." would read as a path in templates)'
)


def load_flow(path: str | os.PathLike[str]) -> FlowDefinition:
    """Read and validate a flow file; `FlowDefinitionError` lists every problem, with lines."""
    file = os.fspath(path)
    try:
        data, lines = read_yaml(file)
    except ConfigError as exc:
        raise _converted(exc, file) from None
    return _validate(data, lines, file)


def parse_flow(text: str, source: str = "<string>") -> FlowDefinition:
    """Validate flow YAML given as text; `source` names it in messages."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise _converted(_syntax_error(source, exc), source) from None
    except yaml.YAMLError as exc:
        raise FlowDefinitionError([FlowProblem(source, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    lines: Lines = {}
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _record(node, (), lines, set())
    return _validate(data, lines, source)


def graph_problems(definition: FlowDefinition) -> list[FlowProblem]:
    """The loader's graph checks, for a definition made in Python rather than loaded.

    Such a definition has no lines below its tasks, so problems point at the task's line.
    """
    nodes = [
        _Node(
            index=index,
            id=task.id,
            line=definition.lines.get(task.id),
            id_line=definition.lines.get(task.id),
            edges=tuple(
                _Edge(key, position, target, definition.lines.get(task.id))
                for key in _EDGE_KEYS
                for position, target in enumerate(getattr(task, key))
            ),
        )
        for index, task in enumerate(definition.tasks)
    ]
    return _graph_problems(definition.source, nodes)


# --- validation -----------------------------------------------------------------------------


def _validate(data: Any, lines: Lines, source: str) -> FlowDefinition:
    if not isinstance(data, Mapping):
        what = "the file is empty" if data is None else f"the top level is {show(data)}"
        message = f"{what}; a flow is a mapping with a name and a list of tasks"
        raise FlowDefinitionError([FlowProblem(source, message, lines.get(()))])

    raw = {k: v for k, v in data.items() if not (k in _EMPTY_LISTS and v is None)}
    tasks = raw.get("tasks")
    spots = _Spots(source, lines, tasks if isinstance(tasks, list) else [])
    problems: list[FlowProblem] = []
    for key in sorted(_SET_BY_LOADER & raw.keys()):
        del raw[key]
        problems.append(spots.problem((key,), _unknown_key_message((key,))))
    pruned, unknown = prune_unknown(FlowDefinition, raw)
    problems += [spots.problem(path, _unknown_key_message(path)) for path, _ in unknown]

    tasks = pruned.get("tasks")
    if isinstance(tasks, list):
        pruned["tasks"] = tasks = [_without_empty_keys(task) for task in tasks]
    nodes = _nodes(tasks, lines)
    task_lines: dict[str, int] = {}
    for node in nodes:
        if node.line is not None:
            task_lines.setdefault(node.id, node.line)  # the first of duplicate ids wins
    _inline_lines(tasks, lines, ("tasks",), "", task_lines)

    definition: FlowDefinition | None = None
    try:
        definition = FlowDefinition.model_validate(
            {**pruned, "source": source, "lines": task_lines}
        )
    except ValidationError as exc:
        problems += [
            spots.problem(error["loc"], _describe(error)) for error in exc.errors(include_url=False)
        ]
    problems += _graph_problems(source, nodes)
    if problems or definition is None:
        raise FlowDefinitionError(_in_reading_order(problems))
    return definition


def _inline_lines(
    tasks: Any, lines: Lines, path: KeyPath, prefix: str, into: dict[str, int]
) -> None:
    """The lines of a subflow's inline tasks, as `<subflow id>/<child id>` (a `/` is never in
    an id), so the child's problems point into this file."""
    if not isinstance(tasks, list):
        return
    for index, task in enumerate(tasks):
        if not isinstance(task, Mapping) or not isinstance(task.get("id"), str):
            continue
        line = lines.get((*path, index))
        if prefix and line is not None:
            into.setdefault(f"{prefix}{task['id']}", line)
        config = task.get("config")
        if task.get("type") == "subflow" and isinstance(config, Mapping):
            inner = (*path, index, "config", "tasks")
            _inline_lines(config.get("tasks"), lines, inner, f"{prefix}{task['id']}/", into)


def _describe(error: ErrorDetails) -> str:
    kind, loc = error["type"], error["loc"]
    if kind == "string_pattern_mismatch" and loc[-1:] == ("id",):
        return f"{_ID_RULE}, got {show(error['input'])}"
    if kind == "too_short" and loc == ("tasks",):
        return "must list at least one task"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {(error.get('ctx') or {}).get('max_length')} characters long"
    return describe(error)


def _unknown_key_message(path: KeyPath) -> str:
    shape = shape_at(FlowDefinition, path[:-1])
    known = [] if shape is None or shape.model is None else list(keys_of(shape.model))
    if shape is not None and shape.model is FlowDefinition:
        known = [key for key in known if key not in _SET_BY_LOADER]
    suggestion = closest(str(path[-1]), known)
    if suggestion:
        return f'unknown key (did you mean "{suggestion}"?)'
    return f"unknown key; allowed keys: {', '.join(known)}"


def _without_empty_keys(task: Any) -> Any:
    if not isinstance(task, Mapping):
        return task
    return {k: v for k, v in task.items() if not (k in _EMPTY_MEANS_DEFAULT and v is None)}


def _converted(exc: ConfigError, file: str) -> FlowDefinitionError:
    problems = []
    for problem in exc.problems:
        message = problem.message
        if problem.column is not None:
            message += f" (column {problem.column})"
        problems.append(FlowProblem(problem.file or file, message, problem.line))
    return FlowDefinitionError(problems)


def _in_reading_order(problems: Iterable[FlowProblem]) -> list[FlowProblem]:
    return sorted(problems, key=lambda problem: problem.line or 0)


class _Spots:
    """Turns a key path into a located problem: `tasks[<id>]` where the task has an id."""

    def __init__(self, source: str, lines: Lines, tasks: Sequence[Any]) -> None:
        self.source = source
        self.lines = lines
        ids = [task.get("id") if isinstance(task, Mapping) else None for task in tasks]
        self.labels = _task_labels(enumerate(ids))

    def problem(self, path: Sequence[str | int], message: str) -> FlowProblem:
        return FlowProblem(self.source, message, self._line(tuple(path)), self._text(path))

    def _text(self, path: Sequence[str | int]) -> str:
        text = ""
        for position, part in enumerate(path):
            if position == 1 and path[0] == "tasks" and isinstance(part, int):
                text += f"[{self.labels.get(part, part)}]"
            elif isinstance(part, int):
                text += f"[{part}]"
            else:
                text += f".{part}" if text else part
        return text

    def _line(self, path: KeyPath) -> int | None:
        # A missing key has no line of its own; point at the nearest parent that has one.
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def _task_labels(ids: Iterable[tuple[int, Any]]) -> dict[int, str]:
    """How messages name each task: `tasks[<id>]`, or `tasks[<index>]` for a missing, odd or
    repeated id (the line then tells which task is meant)."""
    seen: set[str] = set()
    labels: dict[int, str] = {}
    for index, task_id in ids:
        usable = isinstance(task_id, str) and task_id and not set("[] \t\n") & set(task_id)
        if usable and task_id not in seen:
            labels[index] = str(task_id)
            seen.add(str(task_id))
        else:
            labels[index] = str(index)
    return labels


# --- the graph ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Edge:
    """One name in a task's `successors` or `dependencies`."""

    key: str
    position: int
    target: str
    line: int | None


@dataclass(frozen=True, slots=True)
class _Node:
    index: int
    id: str
    line: int | None
    id_line: int | None
    edges: tuple[_Edge, ...]


def _nodes(tasks: Any, lines: Lines) -> list[_Node]:
    """The tasks that have a string id, with the edges that name a string."""
    nodes: list[_Node] = []
    if not isinstance(tasks, list):
        return nodes
    for index, task in enumerate(tasks):
        if not isinstance(task, Mapping) or not isinstance(task.get("id"), str):
            continue
        edges = []
        for key in _EDGE_KEYS:
            targets = task.get(key)
            if isinstance(targets, list):
                edges += [
                    _Edge(key, position, target, lines.get(("tasks", index, key, position)))
                    for position, target in enumerate(targets)
                    if isinstance(target, str)
                ]
        nodes.append(
            _Node(
                index=index,
                id=task["id"],
                line=lines.get(("tasks", index)),
                id_line=lines.get(("tasks", index, "id")),
                edges=tuple(edges),
            )
        )
    return nodes


def _graph_problems(source: str, nodes: Sequence[_Node]) -> list[FlowProblem]:
    problems: list[FlowProblem] = []
    first: dict[str, _Node] = {}
    labels = _task_labels((node.index, node.id) for node in nodes)
    for node in nodes:
        if node.id in first:
            earlier = first[node.id]
            where = f"line {earlier.id_line}" if earlier.id_line is not None else "an earlier task"
            problems.append(
                FlowProblem(
                    source,
                    f'duplicate task id "{node.id}", first used on {where}',
                    node.id_line,
                    f"tasks[{node.index}].id",
                )
            )
        else:
            first[node.id] = node

    predecessors: dict[str, set[str]] = {task_id: set() for task_id in first}
    for node in nodes:
        for edge in node.edges:
            path = f"tasks[{labels[node.index]}].{edge.key}[{edge.position}]"
            if edge.target == node.id:
                message = (
                    "a task cannot be its own successor"
                    if edge.key == "successors"
                    else "a task cannot depend on itself"
                )
                problems.append(FlowProblem(source, message, edge.line, path))
            elif edge.target not in first:
                message = _unknown_target_message(edge, list(first))
                problems.append(FlowProblem(source, message, edge.line, path))
            elif edge.key == "successors":
                predecessors[edge.target].add(node.id)
            else:
                predecessors[node.id].add(edge.target)

    order = {task_id: position for position, task_id in enumerate(first)}
    for cycle in _cycles(predecessors, order):
        text = " -> ".join([*cycle, cycle[0]])
        message = f"the tasks form a cycle: {text} (each waits for the one before it)"
        start = first[cycle[0]]
        problems.append(FlowProblem(source, message, start.line, f"tasks[{labels[start.index]}]"))
    return problems


def _unknown_target_message(edge: _Edge, known: list[str]) -> str:
    what = "successor" if edge.key == "successors" else "dependency"
    message = f'{what} "{edge.target}" is not a task of this flow'
    suggestion = closest(edge.target, known)
    if suggestion:
        return f'{message} (did you mean "{suggestion}"?)'
    listed = ", ".join(known[:_MAX_LISTED]) + (", ..." if len(known) > _MAX_LISTED else "")
    return f"{message}; its tasks are: {listed}"


def _cycles(predecessors: Mapping[str, set[str]], order: Mapping[str, int]) -> list[list[str]]:
    """Each cycle in run order, starting at its task nearest the top of the file.

    `CycleError` names one cycle; one of its edges is then set aside to look for the next, so
    independent cycles are all reported (a few at most: past that, the message would be noise).
    """
    graph = {task_id: set(preds) for task_id, preds in predecessors.items()}
    cycles: list[list[str]] = []
    for _ in range(_MAX_CYCLES):
        try:
            TopologicalSorter(graph).prepare()
        except CycleError as exc:
            # Each node of the list is a predecessor of the next; the last repeats the first.
            cycle: list[str] = list(exc.args[1])[:-1]
            graph[cycle[1]].discard(cycle[0])
            start = min(range(len(cycle)), key=lambda position: order[cycle[position]])
            cycles.append(cycle[start:] + cycle[:start])
        else:
            break
    return cycles
