"""A run as Chrome trace-event JSON: open it in chrome://tracing or Perfetto (the profiler view).

Each task is one complete event ("ph": "X") on a lane of its own, so concurrent tasks show
side by side; times are microseconds from the run's start, as the format wants. It is made from
the run history, which the executor only ever hands redacted values (see `_secrets`), so a
trace holds no secret either.
"""

from __future__ import annotations

from typing import Any

from mfo_client.flows._history import RunRecord

__all__ = ["chrome_trace"]


def chrome_trace(record: RunRecord) -> dict[str, Any]:
    """The trace-event document of one recorded run (tasks that never started are left out)."""
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": f"{record.flow} run"}}
    ]
    lanes: list[float] = []  # when each lane is free again
    for task in sorted(record.tasks, key=lambda t: t.started_at or 0.0):
        if task.started_at is None:
            continue
        end = task.finished_at if task.finished_at is not None else task.started_at
        lane = next((i for i, free in enumerate(lanes) if free <= task.started_at), len(lanes))
        if lane == len(lanes):
            lanes.append(end)
            events.append(
                {
                    "name": "thread_name",
                    "ph": "M",
                    "pid": 1,
                    "tid": lane + 1,
                    "args": {"name": f"lane {lane + 1}"},
                }
            )
        else:
            lanes[lane] = end
        events.append(
            {
                "name": task.task_id,
                "cat": task.type,
                "ph": "X",
                "pid": 1,
                "tid": lane + 1,
                "ts": round((task.started_at - record.started_at) * 1e6),
                "dur": round((end - task.started_at) * 1e6),
                "args": {
                    "status": task.status.value,
                    "attempts": task.attempts,
                    **({"error": task.error} if task.error else {}),
                },
            }
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"run_id": record.run_id, "flow": record.flow, "status": record.status},
    }
