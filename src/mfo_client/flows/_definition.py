"""Flow definitions: the YAML format users already write, as typed models.

`name`, `description`, `tasks` (each: `id`, `type`, and optional `name`, `config`,
`successors`, `dependencies`) is the seed format and loads unchanged. The rest is optional and
ours: per-task `retry`, `timeout`, `priority`, `when`, `for_each` and `max_parallel`, a
flow-level `timeout`, the `condition` and `subflow` task types (see `_control`), and the
environment variables the flow's `${VAR}` may read: `secrets` (their values are hidden from
what a run reports) and `env` (not secret); see `_secrets`. Successors and dependencies both
add edges; `predecessors()` merges them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from mfo_client.config import Duration

__all__ = ["FlowDefinition", "RetrySpec", "TaskDefinition"]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(
            f'"{name}" is not an environment variable name: use letters, digits and "_", '
            "not starting with a digit (the name alone, without ${ })"
        )
    return name


_EnvName = Annotated[str, AfterValidator(_env_name)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySpec(_Model):
    """Attempts of one task, the first included, with a growing wait between them."""

    attempts: int = Field(default=1, ge=1, le=100)
    backoff: Duration = timedelta(seconds=1)
    multiplier: float = Field(default=2.0, ge=1.0)
    max_backoff: Duration = timedelta(minutes=1)

    def delay(self, failed_attempts: int) -> float:
        base = self.backoff.total_seconds() * self.multiplier ** (failed_attempts - 1)
        return float(min(self.max_backoff.total_seconds(), base))


class TaskDefinition(_Model):
    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    type: str = Field(min_length=1)
    name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    successors: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)
    retry: RetrySpec | None = None
    timeout: Duration | None = None
    priority: int = 0
    """Among tasks ready at the same time, higher runs first."""
    when: str | None = None
    """An expression over the run's data; false skips the task."""
    for_each: str | None = None
    """An expression giving a list: the task runs once per item, with `item` and `index`."""
    max_parallel: int = Field(default=4, ge=1, le=1000)
    """With `for_each`: how many items run at once."""

    @property
    def label(self) -> str:
        return self.name or self.id


class FlowDefinition(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    tasks: list[TaskDefinition] = Field(min_length=1)
    timeout: Duration | None = None
    secrets: list[_EnvName] = Field(default_factory=list)
    """Environment variables `${VAR}` may read whose values are secret (redacted)."""
    env: list[_EnvName] = Field(default_factory=list)
    """Environment variables `${VAR}` may read that are not secret."""
    source: str = Field(default="<flow>", exclude=True)
    """The file the definition came from, for messages."""
    lines: dict[str, int] = Field(default_factory=dict, exclude=True)
    """Line of each task by id, for messages (filled by the loader)."""

    @field_validator("env")
    @classmethod
    def _once(cls, names: list[str], info: ValidationInfo) -> list[str]:
        both = [name for name in names if name in info.data.get("secrets", ())]
        if both:
            raise ValueError(
                f"{', '.join(both)} also listed under secrets; list each variable once "
                "(under secrets if its value must be hidden)"
            )
        return names

    def task(self, task_id: str) -> TaskDefinition:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def predecessors(self) -> dict[str, set[str]]:
        """Each task's direct predecessors: its dependencies and the tasks naming it a successor."""
        preds: dict[str, set[str]] = {t.id: set(t.dependencies) for t in self.tasks}
        for t in self.tasks:
            for succ in t.successors:
                preds.setdefault(succ, set()).add(t.id)
        return preds
