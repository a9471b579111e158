"""A flow as a picture: Mermaid (renders in GitHub, GitLab and most wikis) or Graphviz DOT.

Nodes are tasks, labelled with their name and type; a task with a `when` shows it on its
node, since the condition belongs to the task, not to any one edge. So do a `for_each`, a
condition's expression and a subflow's file (or count of inline tasks); the edges from a
condition to its successors are labelled with the branches that run them. Edges are the merged
predecessors, so an edge declared both as a successor and as a dependency is drawn once.
Both outputs list tasks and edges in file order, so they diff well.
"""

from __future__ import annotations

import json
import re

from mfo_client.flows._control import CONDITION, SUBFLOW, branch_key
from mfo_client.flows._definition import FlowDefinition, TaskDefinition

__all__ = ["to_dot", "to_mermaid"]

_MERMAID_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words Mermaid reads as statements at the start of a line (`end` closes a subgraph).
_MERMAID_WORDS = frozenset(
    {"end", "graph", "flowchart", "subgraph", "style", "class", "classdef", "click", "linkstyle"}
)
_MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;"}
_DOT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": ""}


def to_mermaid(definition: FlowDefinition) -> str:
    """A Mermaid flowchart, top to bottom, titled with the flow's name."""
    names = _mermaid_ids([task.id for task in definition.tasks])
    lines = [
        "---",
        f"title: {json.dumps(definition.name, ensure_ascii=False)}",
        "---",
        "flowchart TD",
    ]
    for task in definition.tasks:
        label = "<br/>".join(_mermaid_text(part) for part in _label_lines(task))
        lines.append(f'    {names[task.id]}["{label}"]')
    branches = _branch_labels(definition)
    for before, after in _edges(definition):
        branch = branches.get((before, after))
        arrow = "-->" if branch is None else f'-->|"{_mermaid_text(branch)}"|'
        lines.append(f"    {names[before]} {arrow} {names[after]}")
    return "\n".join(lines) + "\n"


def to_dot(definition: FlowDefinition) -> str:
    """A Graphviz digraph (`dot -Tsvg`); conditional tasks are drawn dashed."""
    lines = [f"digraph {_dot_string(definition.name)} {{", "    node [shape=box];"]
    for task in definition.tasks:
        label = _dot_string("\n".join(_label_lines(task)))
        style = ", style=dashed" if task.when is not None else ""
        lines.append(f"    {_dot_string(task.id)} [label={label}{style}];")
    branches = _branch_labels(definition)
    for before, after in _edges(definition):
        branch = branches.get((before, after))
        attrs = "" if branch is None else f" [label={_dot_string(branch)}]"
        lines.append(f"    {_dot_string(before)} -> {_dot_string(after)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _label_lines(task: TaskDefinition) -> list[str]:
    lines = [task.label, task.type]
    if task.when is not None:
        lines.append(f"when: {task.when}")
    if task.for_each is not None:
        lines.append(f"for each: {task.for_each} (max {task.max_parallel})")
    if task.type == CONDITION and isinstance(task.config.get("expression"), str):
        lines.append(f"if: {task.config['expression']}")
    if task.type == SUBFLOW:
        file, tasks = task.config.get("file"), task.config.get("tasks")
        if isinstance(file, str):
            lines.append(f"runs: {file}")
        elif isinstance(tasks, list):
            lines.append(f"runs: {len(tasks)} inline task{'s' if len(tasks) != 1 else ''}")
    return [" ".join(line.split()) for line in lines]


def _branch_labels(definition: FlowDefinition) -> dict[tuple[str, str], str]:
    """(condition, successor) -> the branch keys that run the successor, e.g. `a, default`."""
    labels: dict[tuple[str, str], list[str]] = {}
    for task in definition.tasks:
        if task.type != CONDITION:
            continue
        branches = task.config.get("branches")
        named = list(branches.items()) if isinstance(branches, dict) else []
        named.append(("default", task.config.get("default")))
        for key, targets in named:
            for target in targets if isinstance(targets, list) else []:
                labels.setdefault((task.id, str(target)), []).append(branch_key(key))
    return {edge: ", ".join(keys) for edge, keys in labels.items()}


def _edges(definition: FlowDefinition) -> list[tuple[str, str]]:
    """(before, after) pairs: by the later task in file order, then by the earlier one."""
    position = {task.id: index for index, task in enumerate(definition.tasks)}
    predecessors = definition.predecessors()
    edges = []
    for task in definition.tasks:
        for before in sorted(predecessors.get(task.id, ()), key=lambda t: position.get(t, -1)):
            edges.append((before, task.id))
    return edges


def _mermaid_ids(task_ids: list[str]) -> dict[str, str]:
    """Task ids as Mermaid node ids: unchanged when Mermaid can read them, else made safe."""
    names: dict[str, str] = {}
    used: set[str] = set()
    plain = [task_id for task_id in task_ids if _mermaid_safe(task_id)]
    for task_id in plain:
        names[task_id] = task_id
        used.add(task_id)
    for task_id in task_ids:
        if task_id in names:
            continue
        name = re.sub(r"[^A-Za-z0-9_]", "_", task_id)
        while name in used or not _mermaid_safe(name):
            name += "_"
        names[task_id] = name
        used.add(name)
    return names


def _mermaid_safe(name: str) -> bool:
    return _MERMAID_ID.fullmatch(name) is not None and name.lower() not in _MERMAID_WORDS


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ENTITIES.get(char, char) for char in text)


def _dot_string(text: str) -> str:
    return '"' + "".join(_DOT_ESCAPES.get(char, char) for char in text) + '"'
