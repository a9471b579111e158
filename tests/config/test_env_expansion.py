"""`${VAR}`, `${VAR:-default}` and `$$` in string values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from mfo_client.config import ConfigError, load_config

WriteConfig = Callable[[str], Path]


def test_variables_are_expanded_in_strings(write_config: WriteConfig) -> None:
    path = write_config(
        """
        client:
          base_url: "https://${MFO_HOST}/api"
          auth_token: ${API_TOKEN}
          timeout: ${TIMEOUT:-10s}
        webhook_listener:
          port: ${PORT}
        """
    )

    config = load_config(
        path, env={"MFO_HOST": "mfo.internal:8443", "API_TOKEN": "tok#en: x", "PORT": "9000"}
    )

    assert config.client.base_url == "https://mfo.internal:8443/api"
    assert config.client.auth_token is not None
    # A value holding "#" and ": " cannot break the YAML: expansion happens after parsing.
    assert config.client.auth_token.get_secret_value() == "tok#en: x"
    assert config.client.timeout == timedelta(seconds=10)
    assert config.webhook_listener.port == 9000


def test_default_applies_when_unset_or_empty(write_config: WriteConfig) -> None:
    path = write_config(
        """
        webhook_listener:
          host: ${HOST:-0.0.0.0}
          path: ${HOOK_PATH:-/hooks}
        """
    )

    assert load_config(path, env={}).webhook_listener.host == "0.0.0.0"
    assert load_config(path, env={"HOST": ""}).webhook_listener.host == "0.0.0.0"
    assert load_config(path, env={"HOST": "::1"}).webhook_listener.host == "::1"


def test_double_dollar_is_a_literal_dollar(write_config: WriteConfig) -> None:
    path = write_config(
        """
        client:
          auth_token: "pa$$word-$${NOT_A_VAR}-$5"
        """
    )

    config = load_config(path, env={"NOT_A_VAR": "oops"})

    assert config.client.auth_token is not None
    assert config.client.auth_token.get_secret_value() == "pa$word-${NOT_A_VAR}-$5"


def test_keys_and_non_strings_are_left_alone(write_config: WriteConfig) -> None:
    path = write_config(
        """
        client:
          retry:
            max_attempts: 4
        """
    )

    assert load_config(path, env={}).client.retry.max_attempts == 4


def test_undefined_variable_names_variable_key_and_line(write_config: WriteConfig) -> None:
    path = write_config(
        """
        client:
          base_url: https://mfo.example.com/api
          auth_token: ${MFO_API_TOKEN}
        webhook_listener:
          secret_key: "${HOOK_SECRET}"
        """
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})

    assert [str(problem) for problem in caught.value.problems] == [
        f'{path}:3: client.auth_token: environment variable "MFO_API_TOKEN" is not set '
        "(set it, or give a default: ${MFO_API_TOKEN:-default})",
        f'{path}:5: webhook_listener.secret_key: environment variable "HOOK_SECRET" is not set '
        "(set it, or give a default: ${HOOK_SECRET:-default})",
    ]


def test_malformed_reference_is_an_error(write_config: WriteConfig) -> None:
    path = write_config(
        """
        webhook_listener:
          host: "${HOST"
        """
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"HOST": "x"})

    assert str(caught.value) == (
        f'{path}:2: webhook_listener.host: malformed "${{": write ${{NAME}} or '
        '${NAME:-default}, or $$ for a literal "$"'
    )


def test_unknown_sections_are_not_expanded(write_config: WriteConfig) -> None:
    """A newer file's sections may use variables this version never needs."""
    path = write_config(
        """
        plugins:
          url: ${STORE_URL}
        """
    )

    config = load_config(path, env={})

    assert [str(w) for w in config.warnings] == [f"{path}:1: plugins: unknown key"]
