"""The typed configuration: frozen pydantic models, one per section of the YAML file.

Models validate shapes and values only. Reading files, `${VAR}` expansion, environment
overrides and unknown keys are the loader's job, so a new section is just a new field here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mfo_client.config import _defaults
from mfo_client.config._durations import Duration, format_duration
from mfo_client.config._errors import ConfigProblem
from mfo_client.config._loader import load_data, load_file
from mfo_client.config._redact import redact

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


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise PydanticCustomError(
            "http_url", "must be an http:// or https:// URL, got {got}", {"got": f'"{value}"'}
        )
    return value


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise PydanticCustomError(
            "url_path", 'must start with "/", got {got}', {"got": f'"{value}"'}
        )
    return value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _log_level(value: object) -> object:
    value = _lower(value)
    return "warning" if value == "warn" else value


_HttpUrl = Annotated[str, AfterValidator(_http_url)]
_UrlPath = Annotated[str, AfterValidator(_absolute_path)]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["text", "json"]


class _Section(BaseModel):
    # Unknown keys are reported as warnings by the loader before validation; ignoring them
    # here keeps direct `model_validate` calls just as tolerant.
    model_config = ConfigDict(frozen=True, extra="ignore")


class RetryConfig(_Section):
    """Exponential backoff between attempts of one request."""

    max_attempts: int = Field(default=_defaults.RETRY_MAX_ATTEMPTS, ge=1)
    initial_backoff: Duration = _defaults.RETRY_INITIAL_BACKOFF
    max_backoff: Duration = _defaults.RETRY_MAX_BACKOFF
    backoff_multiplier: float = Field(default=_defaults.RETRY_BACKOFF_MULTIPLIER, ge=1.0)

    @model_validator(mode="after")
    def _backoff_order(self) -> Self:
        if self.max_backoff < self.initial_backoff:
            raise PydanticCustomError(
                "backoff_order",
                "max_backoff ({max}) must not be less than initial_backoff ({initial})",
                {
                    "max": format_duration(self.max_backoff),
                    "initial": format_duration(self.initial_backoff),
                },
            )
        return self


class CircuitBreakerConfig(_Section):
    """Stop calling a failing server for a while instead of piling on retries."""

    failure_threshold: int = Field(default=_defaults.BREAKER_FAILURE_THRESHOLD, ge=1)
    reset_timeout: Duration = _defaults.BREAKER_RESET_TIMEOUT


class Credentials(_Section):
    """Username and password for the login endpoint, when no static token is given."""

    username: str
    password: SecretStr


class ClientConfig(_Section):
    """How to reach and authenticate against the MFO server."""

    base_url: _HttpUrl = _defaults.BASE_URL
    auth_base_url: _HttpUrl | None = None
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


class WebhookListenerConfig(_Section):
    """Where the local HTTP listener accepts webhooks; port 0 picks any free port."""

    host: str = _defaults.LISTENER_HOST
    port: int = Field(default=_defaults.LISTENER_PORT, ge=0, le=65535)
    path: _UrlPath = _defaults.LISTENER_PATH
    secret_key: SecretStr | None = None


class LoggingConfig(_Section):
    """Log verbosity and output format; `level` is case-insensitive and `warn` means `warning`."""

    level: Annotated[LogLevel, BeforeValidator(_log_level)] = _defaults.LOG_LEVEL
    format: Annotated[LogFormat, BeforeValidator(_lower)] = _defaults.LOG_FORMAT


class Config(_Section):
    """The whole configuration file. Every section is optional; an empty file means defaults."""

    client: ClientConfig = Field(default_factory=ClientConfig)
    webhook_listener: WebhookListenerConfig = Field(default_factory=WebhookListenerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    _warnings: list[ConfigProblem] = PrivateAttr(default_factory=list)

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
