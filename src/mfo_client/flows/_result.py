"""What a run produced: each task's status, attempts, timing, outputs and error."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["FlowResult", "RunStatus", "TaskResult", "TaskStatus"]


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)


class RunStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class TaskResult:
    id: str
    type: str
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    """Why it failed, or why it was skipped or cancelled."""

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(slots=True)
class FlowResult:
    flow: str
    run_id: str
    status: RunStatus
    tasks: dict[str, TaskResult]
    started_at: float
    finished_at: float
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """Each succeeded task's outputs by task id."""
        return {tid: r.outputs for tid, r in self.tasks.items() if r.status is TaskStatus.SUCCEEDED}

    def failed_tasks(self) -> list[TaskResult]:
        return [r for r in self.tasks.values() if r.status is TaskStatus.FAILED]
