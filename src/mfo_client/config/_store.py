"""The `store` and `delivery` sections: where accepted events wait, and how they are forwarded."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mfo_client._urls import userinfo_needs_encoding
from mfo_client.config import _defaults
from mfo_client.config._base import Section, check_backoff_order
from mfo_client.config._durations import Duration

__all__ = ["DeliveryConfig", "FlowsConfig", "StoreConfig"]


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class StoreConfig(Section):
    """The durable store. `sqlite` is embedded (`fsync: full` also survives power loss);
    `redis` (Redis Streams at `url`) is shared by every process that names the same `prefix`.

    Which settings belong to which backend: `path` and `fsync` to sqlite (`path` is ignored
    with redis), `url`, `prefix`, `wait_replicas` and `wait_timeout` to redis; `max_pending`
    and `retention` to both.
    """

    backend: Literal["sqlite", "redis"] = "sqlite"
    path: str = Field(default=_defaults.STORE_PATH, min_length=1)
    fsync: Literal["normal", "full"] = "normal"
    url: SecretStr | None = None
    """redis://[[user]:password@]host:port/db, rediss:// (TLS) or unix://; a secret, since it
    may hold a password: write it as ${REDIS_URL}."""
    prefix: str = "mfo"
    """Starts every key (`<prefix>:...`), so several deployments can share one Redis. No `:`
    in it, so that no prefix is the start of another's keys (`mfo` and `mfo:ev`)."""
    wait_replicas: int = Field(default=0, ge=0, le=64)
    """Replicas that must confirm each event (Redis WAIT) before it is acknowledged."""
    wait_timeout: Duration = timedelta(seconds=1)
    """How long to wait for them; too few in time answers 503 instead of 202."""
    max_pending: int = Field(default=_defaults.STORE_MAX_PENDING, ge=1)
    retention: Duration = _defaults.STORE_RETENTION

    @field_validator("prefix")
    @classmethod
    def _key_prefix(cls, prefix: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.{}-]{1,64}", prefix):
            raise PydanticCustomError(
                "key_prefix",
                "must be 1 to 64 letters, digits or _ . { } -, e.g. mfo or mfo-staging; "
                "got {got}{why}",
                {
                    "got": f'"{prefix}"',
                    "why": (
                        " (no ':': the store puts one after the prefix, so the keys of "
                        "prefixes mfo and mfo:ev would mix)"
                        if ":" in prefix
                        else ""
                    ),
                },
            )
        return prefix

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: SecretStr | None) -> SecretStr | None:
        # The messages never repeat the value: it may hold a password.
        if url is None:
            return None
        if not url.get_secret_value().startswith(_REDIS_SCHEMES):
            raise PydanticCustomError(
                "redis_url",
                "must be a redis://, rediss:// or unix:// URL, e.g. redis://127.0.0.1:6379/0",
                {},
            )
        if userinfo_needs_encoding(url.get_secret_value()):
            raise PydanticCustomError(
                "redis_url_encoding",
                "the user or password holds a '/', '?' or '#', which would end the host part "
                "of the URL: percent-encode them in the password (/ as %2F, ? as %3F, # as "
                "%23; an @ in the query as %40), e.g. redis://:pa%23ss@host:6379/0 (the "
                "value is not shown: it is a secret)",
                {},
            )
        return url

    @model_validator(mode="after")
    def _backend_settings(self) -> Self:
        if self.backend == "redis":
            if self.url is None:
                raise PydanticCustomError(
                    "missing_url",
                    "backend redis needs url, e.g. url: redis://127.0.0.1:6379/0 (with a "
                    "password, write it as ${REDIS_URL})",
                    {},
                )
            if self.fsync != "normal":
                raise PydanticCustomError(
                    "unused_fsync",
                    "fsync is a sqlite setting; with backend redis, durability is the Redis "
                    "server's (appendonly yes, appendfsync always or everysec): remove fsync",
                    {},
                )
        else:
            # Left at their defaults they are harmless (a dumped config has every key).
            fields = type(self).model_fields
            unused = [
                key
                for key in ("url", "prefix", "wait_replicas", "wait_timeout")
                if getattr(self, key) != fields[key].default
            ]
            if unused:
                raise PydanticCustomError(
                    "unused_redis_settings",
                    "{keys} {verb} only used by backend redis; set backend: redis, or remove "
                    "{them}",
                    {
                        "keys": ", ".join(unused),
                        "verb": "is" if len(unused) == 1 else "are",
                        "them": "it" if len(unused) == 1 else "them",
                    },
                )
        if self.wait_replicas and self.wait_timeout <= timedelta(0):
            raise PydanticCustomError(
                "wait_timeout",
                "wait_timeout must be above 0 with wait_replicas (0 would wait forever)",
                {},
            )
        return self


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
    """How long a worker holds a flow job without renewing it (renewed every third of it);
    at least 5s, so that renewals are not a busy loop."""

    @field_validator("lease_time")
    @classmethod
    def _lease_time_sensible(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 5:
            raise ValueError("must be at least 5s (the lease is renewed every third of it)")
        return value

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
