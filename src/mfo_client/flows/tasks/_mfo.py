"""The `mfo_*` tasks: events, resources, chat messages, jobs and notifications on the MFO server.

Each needs the server (`ctx.mfo` raises MissingClientError without one) and sends an
Idempotency-Key made of the run id, the task id (and `for_each` index) and a hash of what it
sends (`_common.idempotency_key`): a task retried, or resumed after a crash, with the same
content is applied once at the server, and one whose content changed since (on resume, an
upstream output it uses differs now) is sent as the new request it is, instead of being refused
for good as a reuse of the key with another body.

Events are the exception: each is keyed by its event id, derived from the run and task ids
unless `event_id` is given, as the API does for every event, so it is stored once (an explicit
id even across runs). Every event is stamped when sent, so a repeat differs in its timestamp,
and the server's "key reused with another body" answer to it means the event is already
stored. API errors propagate as the client raised them (typed, with status and request id) for
the engine to report or retry.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import Field

from mfo_client.api import Event, JobStatus, JobWaitTimeoutError, UnprocessableEntityError
from mfo_client.config import Duration, format_duration
from mfo_client.flows._context import FlowContext
from mfo_client.flows._errors import TaskError
from mfo_client.flows._registry import TaskCallable
from mfo_client.flows.tasks._common import (
    MessageConfig,
    TaskConfig,
    idempotency_key,
    upstream_data,
)

__all__ = [
    "MFOChatSendConfig",
    "MFOEventSendConfig",
    "MFOJobCreateConfig",
    "MFONotificationConfig",
    "MFOResourceCreateConfig",
    "build_mfo_chat_send",
    "build_mfo_event_send",
    "build_mfo_job_create",
    "build_mfo_notification",
    "build_mfo_resource_create",
]

_Metadata = dict[str, Any]
_EVENT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:mfo-client:flows:event-ids")
"""Namespace of the event ids derived from `<run id>:<task id>`."""


class MFOEventSendConfig(TaskConfig):
    event_type: str = Field(min_length=1, max_length=256)
    payload: Any = None
    source: str | None = None
    metadata: _Metadata = Field(default_factory=dict)
    event_id: str | None = Field(default=None, min_length=1, max_length=256)


class MFOResourceCreateConfig(TaskConfig):
    resource_type: str = Field(min_length=1, max_length=256)
    content: Any = None
    """Default (when the key is absent): the upstream data, see `build_mfo_resource_create`."""
    metadata: _Metadata = Field(default_factory=dict)


class MFOChatSendConfig(MessageConfig):
    thread_id: str = Field(min_length=1)
    metadata: _Metadata = Field(default_factory=dict)


class MFOJobCreateConfig(TaskConfig):
    job_type: str = Field(min_length=1, max_length=256)
    input: Any = None
    metadata: _Metadata = Field(default_factory=dict)
    wait: bool = False
    """Wait for the job to finish; a job ending failed or cancelled then fails the task."""
    wait_timeout: Duration = timedelta(minutes=5)


class MFONotificationConfig(MessageConfig):
    recipient: str = Field(min_length=1)
    channel: str | None = None
    metadata: _Metadata = Field(default_factory=dict)


def build_mfo_event_send(cfg: MFOEventSendConfig) -> TaskCallable:
    """Without `event_id`, a run's event gets an id derived from the run and task ids, so every
    attempt sends the same event."""

    async def run(ctx: FlowContext) -> dict[str, Any]:
        key = idempotency_key(ctx)
        event_id = cfg.event_id or (str(uuid.uuid5(_EVENT_IDS, key)) if key else None)
        event = Event(
            type=cfg.event_type,
            payload=cfg.payload,
            source=cfg.source,
            metadata=cfg.metadata,
            **({"id": event_id} if event_id else {}),
        )
        mfo = ctx.mfo
        try:
            receipt = await mfo.events.send_event(
                event, idempotency_key=None if cfg.event_id else key
            )
        except UnprocessableEntityError as exc:
            if exc.code != "idempotency_key_reused" or event_id is None:
                raise
            # An earlier attempt sent this event, stamped with another time: it is stored.
            return {"eventID": (await mfo.events.get(event_id)).id}
        return {"eventID": receipt.id}

    return run


def build_mfo_resource_create(cfg: MFOResourceCreateConfig) -> TaskCallable:
    """Without `content`, the resource holds the upstream data: with one dependency, its
    `output` (what a transform produced) if it has one, else all its outputs."""
    explicit = "content" in cfg.model_fields_set

    async def run(ctx: FlowContext) -> dict[str, Any]:
        content = cfg.content if explicit else _default_content(ctx)
        body = {"type": cfg.resource_type, "content": content, "metadata": cfg.metadata}
        resource = await ctx.mfo.resources.create(
            cfg.resource_type, content, cfg.metadata, idempotency_key=idempotency_key(ctx, body)
        )
        return {"resourceID": resource.id}

    return run


def _default_content(ctx: FlowContext) -> Any:
    data = upstream_data(ctx)
    if len(ctx.task.dependencies) == 1 and isinstance(data, Mapping) and "output" in data:
        return data["output"]
    return data


def build_mfo_chat_send(cfg: MFOChatSendConfig) -> TaskCallable:
    async def run(ctx: FlowContext) -> dict[str, Any]:
        body = {"thread": cfg.thread_id, "text": cfg.text, "metadata": cfg.metadata}
        sent = await ctx.mfo.chat.send_message(
            cfg.thread_id, cfg.text, cfg.metadata, idempotency_key=idempotency_key(ctx, body)
        )
        return {"messageID": sent.message_id}

    return run


def build_mfo_job_create(cfg: MFOJobCreateConfig) -> TaskCallable:
    async def run(ctx: FlowContext) -> dict[str, Any]:
        mfo = ctx.mfo
        body = {"type": cfg.job_type, "input": cfg.input, "metadata": cfg.metadata}
        job = await mfo.jobs.create(
            cfg.job_type, cfg.input, cfg.metadata, idempotency_key=idempotency_key(ctx, body)
        )
        if not cfg.wait:
            return {"jobID": job.id, "status": job.status.value, "output": None}
        try:
            job = await mfo.jobs.wait(job.id, timeout=cfg.wait_timeout.total_seconds())
        except JobWaitTimeoutError as exc:
            raise TaskError(
                f'job {job.id} ("{cfg.job_type}") did not finish within '
                f"{format_duration(cfg.wait_timeout)} (last status: {exc.job.status.value}); "
                "raise wait_timeout, or retry the task to keep waiting on the same job",
                jobID=job.id,
                status=exc.job.status.value,
            ) from exc
        if job.status is not JobStatus.SUCCEEDED:
            reason = f": {job.error}" if job.error else ""
            raise TaskError(
                f'job {job.id} ("{cfg.job_type}") ended {job.status.value}{reason}',
                jobID=job.id,
                status=job.status.value,
                error=job.error,
            )
        return {"jobID": job.id, "status": job.status.value, "output": job.output}

    return run


def build_mfo_notification(cfg: MFONotificationConfig) -> TaskCallable:
    async def run(ctx: FlowContext) -> dict[str, Any]:
        body = {
            "recipient": cfg.recipient,
            "message": cfg.text,
            "channel": cfg.channel,
            "metadata": cfg.metadata,
        }
        sent = await ctx.mfo.notifications.create(
            cfg.recipient,
            cfg.text,
            cfg.channel,
            cfg.metadata,
            idempotency_key=idempotency_key(ctx, body),
        )
        return {"notificationID": sent.id}

    return run
