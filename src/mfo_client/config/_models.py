"""The typed configuration: frozen pydantic models, one per section of the YAML file.

Models validate shapes and values only. Reading files, `${VAR}` expansion, environment
overrides and unknown keys are the loader's job, so a new section is just a new field here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mfo_client.config import _defaults
from mfo_client.config._base import HttpUrl, Section, check_backoff_order, lower
from mfo_client.config._durations import Duration
from mfo_client.config._errors import ConfigProblem
from mfo_client.config._listener import MetricsConfig, WebhookListenerConfig
from mfo_client.config._loader import load_data, load_file
from mfo_client.config._redact import redact
from mfo_client.config._store import DeliveryConfig, FlowsConfig, StoreConfig
from mfo_client.config._triggers import TriggerConfig

__all__ = [
    "CircuitBreakerConfig",
    "ClientConfig",
    "Config",
    "Credentials",
    "LoggingConfig",
    "RetryConfig",
    "WebhookListenerConfig",
    "load_config",
]


def _log_level(value: object) -> object:
    value = lower(value)
    return "warning" if value == "warn" else value


LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["text", "json"]


class RetryConfig(Section):
    """Exponential backoff between attempts of one request."""

    max_attempts: int = Field(default=_defaults.RETRY_MAX_ATTEMPTS, ge=1)
    initial_backoff: Duration = _defaults.RETRY_INITIAL_BACKOFF
    max_backoff: Duration = _defaults.RETRY_MAX_BACKOFF
    backoff_multiplier: float = Field(default=_defaults.RETRY_BACKOFF_MULTIPLIER, ge=1.0)

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        check_backoff_order(self.initial_backoff, self.max_backoff)
        return self


class CircuitBreakerConfig(Section):
    """Stop calling a failing server for a while instead of piling on retries."""

    failure_threshold: int = Field(default=_defaults.BREAKER_FAILURE_THRESHOLD, ge=1)
    reset_timeout: Duration = _defaults.BREAKER_RESET_TIMEOUT


class Credentials(Section):
    """Username and password for the login endpoint, when no static token is given."""

    username: str
    password: SecretStr


class ClientConfig(Section):
    """How to reach and authenticate against the MFO server."""

    base_url: HttpUrl = _defaults.BASE_URL
    auth_base_url: HttpUrl | None = None
    timeout: Duration = _defaults.TIMEOUT
    auth_token: SecretStr | None = None
    credentials: Credentials | None = None
    retry: RetryConfig = Field(default_factory=RetryConfig)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)

    @property
    def resolved_auth_base_url(self) -> str:
        """`auth_base_url`, or else `base_url` with a trailing `/api` swapped for `/auth`."""
        if self.auth_base_url is not None:
            return self.auth_base_url
        base = self.base_url.rstrip("/")
        return base.removesuffix("/api") + "/auth"


class LoggingConfig(Section):
    """Log verbosity and output format; `level` is case-insensitive and `warn` means `warning`."""

    level: Annotated[LogLevel, BeforeValidator(_log_level)] = _defaults.LOG_LEVEL
    format: Annotated[LogFormat, BeforeValidator(lower)] = _defaults.LOG_FORMAT


class Config(Section):
    """The whole configuration file. Every section is optional; an empty file means defaults."""

    client: ClientConfig = Field(default_factory=ClientConfig)
    webhook_listener: WebhookListenerConfig = Field(default_factory=WebhookListenerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    flows: FlowsConfig = Field(default_factory=FlowsConfig)
    triggers: tuple[TriggerConfig, ...] = ()

    _warnings: list[ConfigProblem] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _unique_triggers(self) -> Self:
        seen: set[str] = set()
        for trigger in self.triggers:
            if trigger.name in seen:
                raise PydanticCustomError(
                    "duplicate_trigger",
                    "two triggers are named {name}; trigger names must be unique",
                    {"name": f'"{trigger.name}"'},
                )
            seen.add(trigger.name)
        return self

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
    ) -> Self:
        """Read YAML, expand `${VAR}`, apply `MFO_<SECTION>__<KEY>` overrides, then validate.

        `env` defaults to `os.environ`. Raises `ConfigError` listing every problem found.
        """
        config, warnings = load_file(cls, path, env=env)
        config._warnings = warnings
        return config

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        source: str = "<mapping>",
        *,
        env: Mapping[str, str] | None = None,
    ) -> Self:
        """Load already-parsed data by the same rules as a file; `source` names it in messages."""
        config, warnings = load_data(cls, data, source=source, env=env)
        config._warnings = warnings
        return config

    def __eq__(self, other: object) -> bool:
        # Equal settings make equal configs, whatever warnings loading them produced.
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    @property
    def warnings(self) -> list[ConfigProblem]:
        """Problems that did not stop loading, such as unknown keys (a fresh list)."""
        return list(self._warnings)

    def redacted_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets as `"***"`, durations as text."""
        return redact(self)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load the configuration file at `path`; the same as `Config.from_file`."""
    return Config.from_file(path, env=env)
