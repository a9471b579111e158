"""`MFO_<SECTION>__<KEY>[__<SUBKEY>]` variables override the file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from mfo_client.config import Config, ConfigError, load_config

WriteConfig = Callable[[str], Path]


def test_overrides_replace_file_values(seed_path: Path) -> None:
    config = load_config(
        seed_path,
        env={
            "MFO_CLIENT__AUTH_TOKEN": "abc",
            "MFO_CLIENT__RETRY__MAX_ATTEMPTS": "5",
            "MFO_CLIENT__CIRCUIT_BREAKER__RESET_TIMEOUT": "2m30s",
            "MFO_WEBHOOK_LISTENER__PORT": "9000",
            "MFO_LOGGING__LEVEL": "DEBUG",
        },
    )

    assert config.client.auth_token is not None
    assert config.client.auth_token.get_secret_value() == "abc"
    assert config.client.retry.max_attempts == 5
    assert config.client.retry.initial_backoff == timedelta(seconds=1)  # untouched neighbour
    assert config.client.circuit_breaker.reset_timeout == timedelta(minutes=2, seconds=30)
    assert config.webhook_listener.port == 9000
    assert config.webhook_listener.host == "localhost"
    assert config.logging.level == "debug"
    assert config.warnings == []


def test_keys_are_case_insensitive() -> None:
    config = Config.from_mapping({}, env={"MFO_client__Retry__max_attempts": "7"})

    assert config.client.retry.max_attempts == 7


def test_overrides_create_sections_the_file_left_out() -> None:
    config = Config.from_mapping(
        {},
        env={
            "MFO_CLIENT__CREDENTIALS__USERNAME": "edge",
            "MFO_CLIENT__CREDENTIALS__PASSWORD": "pw",
        },
    )

    assert config.client.credentials is not None
    assert config.client.credentials.username == "edge"
    assert config.client.credentials.password.get_secret_value() == "pw"


def test_values_are_not_expanded() -> None:
    config = Config.from_mapping({}, env={"MFO_CLIENT__AUTH_TOKEN": "a$$b${X}", "X": "no"})

    assert config.client.auth_token is not None
    assert config.client.auth_token.get_secret_value() == "a$$b${X}"


def test_variables_without_double_underscore_are_ignored() -> None:
    config = Config.from_mapping({}, env={"MFO_CONFIG": "/etc/mfo.yaml", "MFO_DEBUG": "1"})

    assert config == Config()
    assert config.warnings == []


def test_bad_value_names_the_variable(seed_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            seed_path,
            env={"MFO_CLIENT__RETRY__MAX_ATTEMPTS": "0", "MFO_WEBHOOK_LISTENER__PORT": "http"},
        )

    assert [str(problem) for problem in caught.value.problems] == [
        "environment variable MFO_CLIENT__RETRY__MAX_ATTEMPTS: client.retry.max_attempts: "
        'must be >= 1, got "0"',
        "environment variable MFO_WEBHOOK_LISTENER__PORT: webhook_listener.port: "
        'must be a whole number, got "http"',
    ]
    problem = caught.value.problems[0]
    assert problem.env_var == "MFO_CLIENT__RETRY__MAX_ATTEMPTS"
    assert problem.file is None
    assert problem.line is None


def test_unknown_variables_are_warnings_with_the_variable_name() -> None:
    config = Config.from_mapping(
        {},
        env={
            "MFO_CLIENT__TIMEOUTT": "5s",
            "MFO_CLEINT__TIMEOUT": "5s",
            "MFO_PLUGINS__PATH": "/var/lib/mfo",
            "MFO_CLIENT__TIMEOUT__SECONDS": "5",
            "MFO_CLIENT__RETRY": "5",
        },
    )

    assert config == Config()
    assert [str(warning) for warning in config.warnings] == [
        "environment variable MFO_CLEINT__TIMEOUT: cleint.timeout: "
        'unknown key (did you mean "MFO_CLIENT"?)',
        "environment variable MFO_CLIENT__RETRY: client.retry: "
        "names a section, not a setting; set its keys instead, e.g. "
        "MFO_CLIENT__RETRY__MAX_ATTEMPTS",
        "environment variable MFO_CLIENT__TIMEOUTT: client.timeoutt: "
        'unknown key (did you mean "MFO_CLIENT__TIMEOUT"?)',
        "environment variable MFO_CLIENT__TIMEOUT__SECONDS: client.timeout.seconds: unknown key",
        "environment variable MFO_PLUGINS__PATH: plugins.path: unknown key",
    ]


def test_process_environment_is_the_default(
    monkeypatch: pytest.MonkeyPatch, seed_path: Path
) -> None:
    monkeypatch.setenv("MFO_WEBHOOK_LISTENER__PORT", "9100")

    assert load_config(seed_path).webhook_listener.port == 9100


def test_override_replaces_a_file_value_that_cannot_expand(write_config: WriteConfig) -> None:
    path = write_config("client:\n  auth_token: ${UNSET_TOKEN}\n")

    config = load_config(path, env={"MFO_CLIENT__AUTH_TOKEN": "from-env"})

    assert config.client.auth_token is not None
    assert config.client.auth_token.get_secret_value() == "from-env"
