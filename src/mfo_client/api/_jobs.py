"""Jobs: work the MFO server runs asynchronously, and waiting for it to finish."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mfo_client.api._core import AsyncCaller, Operation, Program, Sleep, SyncCaller
from mfo_client.api._errors import JobWaitTimeoutError
from mfo_client.api._paging import quote_id
from mfo_client.api.models import Job, JobCreate

__all__ = ["AsyncJobs", "Jobs"]

_MAX_POLL_INTERVAL = 5.0


def _create(
    type: str, input: Any, metadata: Mapping[str, Any] | None, key: str | None
) -> Operation[Job]:
    body = JobCreate(type=type, input=input, metadata=dict(metadata or {}))
    return Operation("POST", "/jobs", Job, json=body.model_dump(mode="json"), idempotency_key=key)


def _get(job_id: str) -> Operation[Job]:
    return Operation("GET", f"/jobs/{quote_id(job_id)}", Job)


def _cancel(job_id: str) -> Operation[Job]:
    # Cancelling twice is harmless, so a fixed key lets retries of this call collapse into one.
    return Operation(
        "POST", f"/jobs/{quote_id(job_id)}/cancel", Job, idempotency_key=f"cancel-{job_id}"
    )


def _wait(
    caller: SyncCaller | AsyncCaller, job_id: str, timeout: float, poll_interval: float
) -> Program[Job]:
    """Poll with a growing interval (x1.5, at most 5s) until the job reaches a final status."""
    deadline = time.monotonic() + timeout
    interval = poll_interval
    while True:
        job = yield from caller._program(_get(job_id))
        if job.status.is_final:
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobWaitTimeoutError(job, timeout)
        yield Sleep(min(interval, remaining), backoff=False)
        interval = min(interval * 1.5, _MAX_POLL_INTERVAL)


class Jobs:
    def __init__(self, client: SyncCaller) -> None:
        self._client = client

    def create(
        self,
        type: str,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Job:
        return self._client._request(_create(type, input, metadata, idempotency_key))

    def get(self, job_id: str) -> Job:
        return self._client._request(_get(job_id))

    def cancel(self, job_id: str) -> Job:
        return self._client._request(_cancel(job_id))

    def wait(self, job_id: str, timeout: float = 60.0, *, poll_interval: float = 0.25) -> Job:
        """The job once final; JobWaitTimeoutError (carrying the last state) after `timeout`s."""
        return self._client._run(_wait(self._client, job_id, timeout, poll_interval))


class AsyncJobs:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    async def create(
        self,
        type: str,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Job:
        return await self._client._request(_create(type, input, metadata, idempotency_key))

    async def get(self, job_id: str) -> Job:
        return await self._client._request(_get(job_id))

    async def cancel(self, job_id: str) -> Job:
        return await self._client._request(_cancel(job_id))

    async def wait(self, job_id: str, timeout: float = 60.0, *, poll_interval: float = 0.25) -> Job:
        """The job once final; JobWaitTimeoutError (carrying the last state) after `timeout`s."""
        return await self._client._run(_wait(self._client, job_id, timeout, poll_interval))
