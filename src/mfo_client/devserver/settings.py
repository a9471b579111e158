"""Settings of the reference MFO server, and the shape of an injected fault.

Both are pydantic models so that the CLI, Python callers and `POST /_admin/faults` validate the
same way and fail with a message naming the field.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DevServerSettings", "FaultSpec"]

DEFAULT_TOKEN = "dev-token"  # noqa: S105  (a well-known development token, printed at start)
ONE_MEBIBYTE = 1024 * 1024


class FaultSpec(BaseModel):
    """A fault to inject: failures, latency, or both, optionally limited in count and routes.

    `fail_rate` defaults to 1.0 when `status` is given and to 0.0 otherwise (latency only);
    `status` defaults to 503. `count` limits the fault to the next N matching requests, after
    which it clears itself; `routes` restricts it to route templates such as
    `"POST /api/events"`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    status: int | None = Field(default=None, ge=400, le=599)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    count: int | None = Field(default=None, ge=1)
    retry_after: int | None = Field(default=None, ge=0)
    routes: list[str] | None = None

    @property
    def effective_fail_rate(self) -> float:
        if self.fail_rate is not None:
            return self.fail_rate
        return 1.0 if self.status is not None else 0.0

    @property
    def effective_status(self) -> int:
        return 503 if self.status is None else self.status


class DevServerSettings(BaseModel):
    """How to run the dev server; every field has a default that works on a laptop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535, description="0 picks any free port.")
    db: str = Field(default=":memory:", description='An SQLite file, or ":memory:".')
    token: str = Field(default=DEFAULT_TOKEN, min_length=1, description="Static bearer token.")
    username: str | None = Field(default=None, description="Login is disabled unless set.")
    password: str | None = None
    token_ttl: float = Field(default=3600.0, gt=0, description="Login token lifetime, seconds.")
    refresh_ttl: float = Field(default=86400.0, gt=0, description="Refresh token lifetime.")
    job_duration: float = Field(
        default=0.5, ge=0, description="Seconds from queued to final; running from half-way."
    )
    max_body_bytes: int = Field(default=ONE_MEBIBYTE, ge=1)
    faults: FaultSpec | None = Field(default=None, description="Fault active from the start.")

    @model_validator(mode="after")
    def _login_needs_both(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together (or neither)")
        return self

    @property
    def login_enabled(self) -> bool:
        return self.username is not None and self.password is not None
