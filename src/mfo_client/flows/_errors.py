"""Flow errors.

FlowError
├── FlowDefinitionError     the definition cannot run; `problems` lists every one, located
├── TaskError               raised by a task to fail with a clean message (no traceback)
│   ├── TemplateError       a config template could not be rendered (missing variable, ...)
│   └── MissingClientError  a task needs the MFO server and none is configured
└── UnknownTaskTypeError    no factory is registered under a type name
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "FlowDefinitionError",
    "FlowError",
    "FlowProblem",
    "MissingClientError",
    "TaskError",
    "TemplateError",
    "UnknownTaskTypeError",
]


class FlowError(Exception):
    """Base of the flow engine's errors."""


@dataclass(frozen=True, slots=True)
class FlowProblem:
    """One thing wrong with a flow definition, located as precisely as known."""

    file: str
    message: str
    line: int | None = None
    path: str | None = None
    """Where in the definition, e.g. `tasks[2].successors[0]` or `tasks[store_data_mfo].config`."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class FlowDefinitionError(FlowError):
    def __init__(self, problems: list[FlowProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TaskError(FlowError):
    """Fail the running task with this message; `details` are kept in the result."""

    def __init__(self, message: str, **details: Any) -> None:
        self.message = message
        self.details = details
        super().__init__(message)


class TemplateError(TaskError):
    pass


class MissingClientError(TaskError):
    def __init__(self, task_type: str) -> None:
        super().__init__(
            f"{task_type} needs the MFO server, and no server is configured "
            "(run with --config FILE, or pass an MFO client to the executor)"
        )


class UnknownTaskTypeError(FlowError, KeyError):
    def __init__(self, type_name: str, known: list[str]) -> None:
        self.type_name = type_name
        self.known = known
        super().__init__(
            f'unknown task type "{type_name}"; registered types: {", ".join(known) or "none"}'
        )

    def __str__(self) -> str:
        return str(self.args[0])
