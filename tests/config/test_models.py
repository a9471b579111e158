"""Field rules of each section, exercised through `Config.from_mapping` as a library user would."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from mfo_client.config import ClientConfig, Config, ConfigError, RetryConfig


def load(data: dict[str, Any]) -> Config:
    return Config.from_mapping(data, env={})


def messages(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(data)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(("given", "port"), [("8080", 8080), (8080, 8080), (0, 0), ("0", 0)])
def test_port_accepts_text_or_number_and_zero_for_any_free_port(given: object, port: int) -> None:
    assert load({"webhook_listener": {"port": given}}).webhook_listener.port == port


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (70000, "must be <= 65535, got 70000"),
        ("70000", 'must be <= 65535, got "70000"'),
        (-1, "must be >= 0, got -1"),
        ("http", 'must be a whole number, got "http"'),
    ],
)
def test_port_out_of_range_or_not_a_number(given: object, message: str) -> None:
    assert messages({"webhook_listener": {"port": given}}) == [
        f"<mapping>: webhook_listener.port: {message}"
    ]


def test_listener_path_must_start_with_slash() -> None:
    assert messages({"webhook_listener": {"path": "hooks"}}) == [
        '<mapping>: webhook_listener.path: must start with "/", got "hooks"'
    ]


@pytest.mark.parametrize(
    ("given", "level"),
    [("DEBUG", "debug"), ("Info", "info"), ("warn", "warning"), ("WARNING", "warning"),
     ("error", "error"), ("Critical", "critical")],
)  # fmt: skip
def test_log_level_is_case_insensitive_and_warn_means_warning(given: str, level: str) -> None:
    assert load({"logging": {"level": given}}).logging.level == level


def test_log_format_and_level_must_be_known() -> None:
    assert messages({"logging": {"level": "verbose", "format": "xml"}}) == [
        "<mapping>: logging.level: must be one of debug, info, warning, error, critical, "
        'got "verbose"',
        '<mapping>: logging.format: must be one of text, json, got "xml"',
    ]


def test_log_format_json() -> None:
    assert load({"logging": {"format": "JSON"}}).logging.format == "json"


@pytest.mark.parametrize(
    ("base_url", "auth_url"),
    [
        ("https://mfo.example.com/api", "https://mfo.example.com/auth"),
        ("https://mfo.example.com/api/", "https://mfo.example.com/auth"),
        ("https://mfo.example.com/tenant/api", "https://mfo.example.com/tenant/auth"),
        ("https://mfo.example.com", "https://mfo.example.com/auth"),
    ],
)
def test_auth_base_url_defaults_to_auth_beside_api(base_url: str, auth_url: str) -> None:
    client = ClientConfig(base_url=base_url)

    assert client.auth_base_url is None
    assert client.resolved_auth_base_url == auth_url


def test_explicit_auth_base_url_wins() -> None:
    client = ClientConfig(auth_base_url="https://login.example.com/auth")

    assert client.resolved_auth_base_url == "https://login.example.com/auth"


def test_urls_must_be_http() -> None:
    assert messages({"client": {"base_url": "mfo.example.com/api"}}) == [
        '<mapping>: client.base_url: must be an http:// or https:// URL, got "mfo.example.com/api"'
    ]


def test_credentials_need_username_and_password() -> None:
    config = load({"client": {"credentials": {"username": "edge", "password": "pw-123"}}})

    assert config.client.credentials is not None
    assert config.client.credentials.username == "edge"
    assert config.client.credentials.password.get_secret_value() == "pw-123"
    assert messages({"client": {"credentials": {"username": "edge"}}}) == [
        "<mapping>: client.credentials.password: required, but not set"
    ]


def test_numeric_secret_must_be_quoted_and_is_not_echoed() -> None:
    assert messages({"client": {"auth_token": 123456}}) == [
        "<mapping>: client.auth_token: must be a string (quote the value in YAML)"
    ]


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ({"max_attempts": 0}, "client.retry.max_attempts: must be >= 1, got 0"),
        ({"backoff_multiplier": 0.5}, "client.retry.backoff_multiplier: must be >= 1.0, got 0.5"),
        (
            {"initial_backoff": "10s", "max_backoff": "1s"},
            "client.retry: max_backoff (1s) must not be less than initial_backoff (10s)",
        ),
    ],
)
def test_retry_limits(retry: dict[str, Any], message: str) -> None:
    assert messages({"client": {"retry": retry}}) == [f"<mapping>: {message}"]


def test_breaker_threshold_must_be_positive() -> None:
    assert messages({"client": {"circuit_breaker": {"failure_threshold": 0}}}) == [
        "<mapping>: client.circuit_breaker.failure_threshold: must be >= 1, got 0"
    ]


def test_section_must_be_a_mapping() -> None:
    assert messages({"client": {"retry": [1, 2]}}) == [
        "<mapping>: client.retry: must be a mapping of keys, got a list"
    ]


def test_empty_sections_mean_defaults() -> None:
    """`logging:` with every key commented out parses as null; that is not an error."""
    config = load({"client": None, "webhook_listener": None, "logging": None})

    assert config == Config()


def test_durations_accept_bare_seconds() -> None:
    config = load({"client": {"timeout": 5, "circuit_breaker": {"reset_timeout": 0.5}}})

    assert config.client.timeout == timedelta(seconds=5)
    assert config.client.circuit_breaker.reset_timeout == timedelta(milliseconds=500)


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError):
        RetryConfig().max_attempts = 9  # type: ignore[misc]


def test_model_dump_round_trips() -> None:
    config = load({"client": {"timeout": "1h30m", "retry": {"max_backoff": "2m"}}})

    dumped = config.model_dump()

    assert dumped["client"]["timeout"] == "1h30m"
    assert dumped["client"]["retry"]["max_backoff"] == "2m"
    assert Config.model_validate(dumped) == config
