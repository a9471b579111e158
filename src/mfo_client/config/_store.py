"""The `store` and `delivery` sections: where accepted events wait, and how they are forwarded."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from mfo_client.config import _defaults
from mfo_client.config._base import Section, check_backoff_order
from mfo_client.config._durations import Duration

__all__ = ["DeliveryConfig", "FlowsConfig", "StoreConfig"]


class StoreConfig(Section):
    """The durable store. `sqlite` is embedded; `fsync: full` also survives power loss."""

    backend: Literal["sqlite"] = "sqlite"
    path: str = Field(default=_defaults.STORE_PATH, min_length=1)
    fsync: Literal["normal", "full"] = "normal"
    max_pending: int = Field(default=_defaults.STORE_MAX_PENDING, ge=1)
    retention: Duration = _defaults.STORE_RETENTION


class DeliveryConfig(Section):
    """Forwarding to the MFO server: workers, attempts, and the growing delay between them."""

    max_attempts: int = Field(default=_defaults.DELIVERY_MAX_ATTEMPTS, ge=1)
    concurrency: int = Field(default=_defaults.DELIVERY_CONCURRENCY, ge=1, le=256)
    lease_time: Duration = _defaults.DELIVERY_LEASE_TIME
    initial_backoff: Duration = _defaults.DELIVERY_INITIAL_BACKOFF
    max_backoff: Duration = _defaults.DELIVERY_MAX_BACKOFF

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        check_backoff_order(self.initial_backoff, self.max_backoff)
        return self


class FlowsConfig(Section):
    """Local taskflows: how many tasks run at once, and operator settings per task type.

    `tasks` holds settings that flow files and event data cannot change, e.g.
    `http_get_task: {allow_hosts: [...], connect_to: {...}}`; `transformation_rules` are the
    rule sets `data_transform_task` can name (besides the built-in `ruleset_v1`).
    """

    concurrency: int = Field(default=8, ge=1, le=1024)
    """Tasks in flight per run."""
    max_runs: int = Field(default=16, ge=1, le=4096)
    """Triggered runs at once in one worker (each trigger also has its own `concurrency`)."""
    history: str = Field(default=".mfo/runs.db", min_length=1)
    """The run history (SQLite file) triggered runs are recorded in; `mfo runs` reads it."""
    lease_time: Duration = timedelta(seconds=60)
    """How long a worker holds a flow job without renewing it (renewed every third of it)."""
    tasks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    transformation_rules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    """Environment variables any flow may read as `${VAR}`, their values hidden from what a
    run reports (history, outputs, logs, traces); a flow file lists more under `secrets:`."""

    @field_validator("secrets")
    @classmethod
    def _variable_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(
                    f'"{name}" is not an environment variable name: use letters, digits and '
                    '"_", not starting with a digit (the name alone, without ${ })'
                )
        return names

    def task_settings(self) -> dict[str, Any]:
        """What the flow engine hands tasks as `FlowClients.settings`."""
        return {**self.tasks, "transformation_rules": dict(self.transformation_rules)}
