"""Wire models of the MFO API: what travels over HTTP, shared by the client and the dev server.

Requests and responses are pydantic models so that both ends validate the same shapes;
`openapi/mfo-api.yaml` is the contract they follow. Response models ignore unknown fields so a
newer server never breaks an older client; request models forbid them so typos fail loudly.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatMessage",
    "ChatMessageCreate",
    "ErrorBody",
    "ErrorDetail",
    "Event",
    "EventReceipt",
    "Job",
    "JobCreate",
    "JobStatus",
    "LoginRequest",
    "Notification",
    "NotificationCreate",
    "Page",
    "RefreshRequest",
    "Resource",
    "ResourceCreate",
    "StoredEvent",
    "TokenResponse",
    "new_id",
    "utcnow",
]

T = TypeVar("T")


def new_id() -> str:
    """A fresh opaque identifier (UUID4 text)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Event(BaseModel):
    """A business event sent to the MFO server.

    `id` is opaque and caller-chosen when it matters (a webhook delivery id); the server keeps
    it as the event's id, and the client also sends it as the Idempotency-Key.
    """

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=256)
    payload: Any
    id: str = Field(default_factory=new_id, min_length=1, max_length=256)
    timestamp: datetime = Field(default_factory=utcnow)
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class EventReceipt(_Response):
    id: str
    status: str = "accepted"
    received_at: datetime


class StoredEvent(_Response):
    """An event as the server keeps it."""

    id: str
    type: str
    payload: Any
    timestamp: datetime | None = None
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    received_at: datetime


class ChatMessageCreate(_Request):
    message: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(_Response):
    message_id: str
    thread_id: str
    message: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class ResourceCreate(_Request):
    type: str = Field(min_length=1, max_length=256)
    content: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Resource(_Response):
    id: str
    type: str
    content: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobCreate(_Request):
    type: str = Field(min_length=1, max_length=256)
    input: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Job(_Response):
    id: str
    type: str
    status: JobStatus
    input: Any = None
    output: Any = None
    error: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class NotificationCreate(_Request):
    recipient: str = Field(min_length=1)
    message: str = Field(min_length=1)
    channel: str = "default"
    metadata: dict[str, Any] = Field(default_factory=dict)


class Notification(_Response):
    id: str
    recipient: str
    message: str
    channel: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class LoginRequest(_Request):
    username: str = Field(min_length=1)
    password: str


class RefreshRequest(_Request):
    refresh_token: str = Field(min_length=1)


class TokenResponse(_Response):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (the scheme name, not a secret)
    expires_in: int = Field(ge=0, description="Seconds until the access token expires.")
    refresh_token: str | None = None


class Page(_Response, Generic[T]):
    """One page of a list endpoint; pass `next_cursor` back as `cursor` for the next."""

    items: list[T]
    next_cursor: str | None = None


class ErrorDetail(_Response):
    code: str
    message: str


class ErrorBody(_Response):
    error: ErrorDetail
