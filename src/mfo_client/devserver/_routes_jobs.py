"""`/api/jobs`: create, read, cancel; a job's status is derived from the clock when read.

A job stores only when it was created, how long it runs and whether it was cancelled; status,
output and `updated_at` follow from those on every read (queued, running from half-way, final at
`job_duration`). That keeps the server free of background tasks and its timing deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mfo_client.api.models import Job, JobCreate, JobStatus, new_id
from mfo_client.devserver._errors import ApiError
from mfo_client.devserver._http import json_response, parse_body, route
from mfo_client.devserver._store import Store

__all__ = ["JobRecord", "job_routes", "job_view"]

KIND = "jobs"
FAILURE_MESSAGE = "job failed as requested by input.fail"


class JobRecord(BaseModel):
    """What is stored of a job; everything else is computed by `job_view`."""

    id: str
    type: str
    input: Any = None
    metadata: dict[str, Any]
    created_at: datetime
    duration: float
    cancelled_at: datetime | None = None


def _asks_to_fail(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("fail") is True


def job_view(record: JobRecord, now: datetime) -> Job:
    """The job as it stands at `now`."""
    common = {
        "id": record.id,
        "type": record.type,
        "input": record.input,
        "metadata": record.metadata,
        "created_at": record.created_at,
    }
    if record.cancelled_at is not None:
        return Job(**common, status=JobStatus.CANCELLED, updated_at=record.cancelled_at)
    elapsed = (now - record.created_at).total_seconds()
    # At creation (elapsed 0) a job is queued even when it takes no time at all.
    if elapsed <= 0 or elapsed < record.duration / 2:
        return Job(**common, status=JobStatus.QUEUED, updated_at=record.created_at)
    if elapsed < record.duration:
        started = record.created_at + timedelta(seconds=record.duration / 2)
        return Job(**common, status=JobStatus.RUNNING, updated_at=started)
    finished = record.created_at + timedelta(seconds=record.duration)
    if _asks_to_fail(record.input):
        return Job(**common, status=JobStatus.FAILED, error=FAILURE_MESSAGE, updated_at=finished)
    output = {"echo": record.input, "type": record.type}
    return Job(**common, status=JobStatus.SUCCEEDED, output=output, updated_at=finished)


def _now() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)


def job_routes(store: Store, job_duration: float) -> list[Route]:
    def load(request: Request) -> JobRecord:
        job_id = request.path_params["id"]
        body = store.get(KIND, job_id)
        if body is None:
            raise ApiError(404, "not_found", f"no job with id {job_id!r}")
        return JobRecord.model_validate_json(body)

    async def create(request: Request) -> Response:
        body = await parse_body(request, JobCreate)
        record = JobRecord(
            id=new_id(),
            type=body.type,
            input=body.input,
            metadata=body.metadata,
            created_at=_now(),
            duration=job_duration,
        )
        store.insert(KIND, record.id, record.type, record.model_dump_json())
        return json_response(job_view(record, record.created_at), 201)

    async def read(request: Request) -> Response:
        return json_response(job_view(load(request), _now()))

    async def cancel(request: Request) -> Response:
        record = load(request)
        now = _now()
        current = job_view(record, now)
        if current.status.is_final:
            raise ApiError(409, "conflict", f"job {record.id} is already {current.status.value}")
        cancelled = record.model_copy(update={"cancelled_at": now})
        store.replace(KIND, record.id, cancelled.model_dump_json())
        return json_response(job_view(cancelled, now))

    return [
        route("/api/jobs", {"POST": create}),
        route("/api/jobs/{id}", {"GET": read}),
        route("/api/jobs/{id}/cancel", {"POST": cancel}),
    ]
