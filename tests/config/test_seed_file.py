"""The documented seed file must keep loading, unchanged, into the right typed values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from mfo_client.config import Config, load_config

WriteConfig = Callable[[str], Path]


def test_seed_file_loads_with_typed_values(seed_path: Path) -> None:
    config = load_config(seed_path, env={})

    client = config.client
    assert client.base_url == "https://api.mfo.example.com/api"
    assert client.auth_base_url == "https://auth.mfo.example.com/auth"
    assert client.resolved_auth_base_url == "https://auth.mfo.example.com/auth"
    assert client.timeout == timedelta(seconds=30)
    assert client.auth_token is not None
    assert client.auth_token.get_secret_value() == "your-secure-api-token"
    assert client.credentials is None
    assert client.retry.max_attempts == 3
    assert client.retry.initial_backoff == timedelta(seconds=1)
    assert client.retry.max_backoff == timedelta(seconds=30)
    assert client.retry.backoff_multiplier == 2.0
    assert client.circuit_breaker.failure_threshold == 5
    assert client.circuit_breaker.reset_timeout == timedelta(seconds=60)

    listener = config.webhook_listener
    assert listener.host == "localhost"
    assert listener.port == 8080
    assert type(listener.port) is int
    assert listener.path == "/webhook"
    assert listener.secret_key is not None
    assert listener.secret_key.get_secret_value() == "your-very-secret-webhook-key"

    assert config.logging.level == "info"
    assert config.logging.format == "text"
    assert config.warnings == []


def test_secrets_are_hidden_in_repr_and_str(seed_path: Path) -> None:
    config = load_config(seed_path, env={})

    for text in (repr(config), str(config), repr(config.client), repr(config.webhook_listener)):
        assert "your-secure-api-token" not in text
        assert "your-very-secret-webhook-key" not in text


def test_from_file_is_load_config(seed_path: Path) -> None:
    assert Config.from_file(seed_path, env={}) == load_config(seed_path, env={})


def test_empty_file_gives_defaults(write_config: WriteConfig) -> None:
    path = write_config("# nothing configured yet\n")

    config = load_config(path, env={})

    assert config == Config()
    assert config.client.base_url == "http://127.0.0.1:8081/api"
    assert config.client.auth_base_url is None
    assert config.client.resolved_auth_base_url == "http://127.0.0.1:8081/auth"
    assert config.client.timeout == timedelta(seconds=30)
    assert config.client.auth_token is None
    assert config.client.retry.max_attempts == 3
    assert config.client.retry.initial_backoff == timedelta(seconds=1)
    assert config.client.retry.max_backoff == timedelta(seconds=30)
    assert config.client.retry.backoff_multiplier == 2.0
    assert config.client.circuit_breaker.failure_threshold == 5
    assert config.client.circuit_breaker.reset_timeout == timedelta(minutes=1)
    assert config.webhook_listener.host == "127.0.0.1"
    assert config.webhook_listener.port == 8080
    assert config.webhook_listener.path == "/webhook"
    assert config.webhook_listener.secret_key is None
    assert config.logging.level == "info"
    assert config.logging.format == "text"
