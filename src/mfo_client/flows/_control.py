"""The control-flow task types the executor runs itself: `condition` and `subflow`.

They are not registry factories, because they act on the run rather than on the outside world:
a condition decides which of its successors run, a subflow runs another flow with the same
executor. This module holds what both the builder and the executor need: their config models,
how an expression's value names a branch, and how a subflow's child definition is found.
(`for_each` is not a task type but a key of any task; the executor handles it.)
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from mfo_client.flows._definition import FlowDefinition, TaskDefinition, _Model
from mfo_client.flows._errors import FlowDefinitionError, FlowProblem

__all__ = [
    "CONDITION",
    "CONSTRUCTS",
    "MAX_SUBFLOW_DEPTH",
    "SUBFLOW",
    "ConditionConfig",
    "SubflowConfig",
    "branch_key",
    "child_definition",
    "child_path",
]

CONDITION = "condition"
SUBFLOW = "subflow"
CONSTRUCTS = frozenset({CONDITION, SUBFLOW})
MAX_SUBFLOW_DEPTH = 10
"""Subflows inside subflows, at most this deep (a file cycle is refused outright)."""
DEFAULT_BRANCH = "default"


def branch_key(value: Any) -> str:
    """How a value names a branch: YAML `true:` and an expression's True both give "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


class ConditionConfig(_Model):
    expression: str = Field(min_length=1)
    branches: dict[str, list[str]] = Field(default_factory=dict)
    default: list[str] = Field(default_factory=list)

    @field_validator("branches", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {branch_key(key): targets for key, targets in value.items()}
        return value

    def choose(self, value: Any) -> tuple[str, list[str]]:
        """The branch an expression's value picks, and the tasks it runs."""
        key = branch_key(value)
        if key in self.branches:
            return key, self.branches[key]
        return DEFAULT_BRANCH, self.default

    def targets(self) -> list[tuple[str, int, str]]:
        """(config key path, position, task id) of every task a branch names."""
        named = [
            (f"branches.{key}", position, target)
            for key, targets in self.branches.items()
            for position, target in enumerate(targets)
        ]
        return named + [
            ("default", position, target) for position, target in enumerate(self.default)
        ]


class SubflowConfig(_Model):
    file: str | None = Field(default=None, min_length=1)
    """Another flow file, relative to the parent flow's file."""
    tasks: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    """Inline tasks, in the same format as a flow's."""
    input: dict[str, Any] = Field(default_factory=dict)
    """The child's initial context; templates render against the parent run's data."""

    @model_validator(mode="after")
    def _one_source(self) -> SubflowConfig:
        if (self.file is None) == (self.tasks is None):
            raise ValueError("give either file (another flow file) or tasks (inline), not both")
        return self


def child_path(parent: FlowDefinition, file: str) -> str:
    """The child's file: relative to the parent's file, or the working directory for a flow
    that came from text."""
    if parent.source.startswith("<"):
        return os.path.abspath(file)
    return os.path.abspath(os.path.join(os.path.dirname(parent.source), file))


def child_definition(
    parent: FlowDefinition, task: TaskDefinition, config: SubflowConfig
) -> FlowDefinition:
    """The flow a subflow task runs; `FlowDefinitionError` when it cannot be read or is invalid.

    Inline tasks keep the lines the loader recorded for them (`<subflow id>/<child id>`).
    """
    if config.file is not None:
        from mfo_client.flows._loader import load_flow

        path = child_path(parent, config.file)
        if not os.path.isfile(path):
            line = parent.lines.get(task.id)
            message = f'no flow file "{config.file}" (looked for {path})'
            raise FlowDefinitionError(
                [FlowProblem(parent.source, message, line, f"tasks[{task.id}].config.file")]
            )
        return load_flow(path)
    assert config.tasks is not None
    prefix = f"{task.id}/"
    lines = {
        key[len(prefix) :]: line for key, line in parent.lines.items() if key.startswith(prefix)
    }
    for child in config.tasks:
        child_id = child.get("id") if isinstance(child, dict) else None
        if isinstance(child_id, str) and child_id not in lines and task.id in parent.lines:
            lines[child_id] = parent.lines[task.id]
    try:
        return FlowDefinition.model_validate(
            {
                "name": f"{parent.name}.{task.id}",
                "tasks": config.tasks,
                "source": parent.source,
                "lines": lines,
            }
        )
    except ValidationError as exc:
        line = parent.lines.get(task.id)
        problems = []
        for error in exc.errors(include_url=False):
            loc = "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
            )
            path = f"tasks[{task.id}].config{loc}"
            problems.append(FlowProblem(parent.source, str(error["msg"]), line, path))
        raise FlowDefinitionError(problems) from None
