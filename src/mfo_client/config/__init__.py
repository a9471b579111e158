"""Configuration of the MFO client: typed, frozen settings read from YAML and the environment.

`load_config(path)` (or `Config.from_file`) reads the file, expands `${VAR}` and
`${VAR:-default}` in string values, applies `MFO_<SECTION>__<KEY>` environment overrides and
validates everything at once; problems are raised together as one `ConfigError`, unknown
keys are kept as `Config.warnings`.
"""

from __future__ import annotations

from mfo_client.config._durations import Duration, format_duration, parse_duration
from mfo_client.config._errors import ConfigError, ConfigProblem
from mfo_client.config._listener import (
    SCHEMES,
    HmacSchemeConfig,
    MetricsConfig,
    SourceConfig,
    WebhookListenerConfig,
)
from mfo_client.config._models import (
    CircuitBreakerConfig,
    ClientConfig,
    Config,
    Credentials,
    LoggingConfig,
    RetryConfig,
    load_config,
)
from mfo_client.config._store import DeliveryConfig, FlowsConfig, StoreConfig

__all__ = [
    "SCHEMES",
    "CircuitBreakerConfig",
    "ClientConfig",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "Credentials",
    "DeliveryConfig",
    "Duration",
    "FlowsConfig",
    "HmacSchemeConfig",
    "LoggingConfig",
    "MetricsConfig",
    "RetryConfig",
    "SourceConfig",
    "StoreConfig",
    "WebhookListenerConfig",
    "format_duration",
    "load_config",
    "parse_duration",
]
