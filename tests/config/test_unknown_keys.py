"""Unknown keys load fine, become warnings with a did-you-mean hint, and stay out of the config."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from mfo_client.config import Config, ConfigError, ConfigProblem, load_config

WriteConfig = Callable[[str], Path]

WITH_UNKNOWN = """
client:
  base_url: https://mfo.example.com/api
  timout: 5s
  retry:
    max_attempt: 9
webhook_listener:
  secret: abc
  tls:
    cert_file: {secret_key: x}
schedules:
  path: /var/lib/mfo
plugins: [{name: a}]
"""


def test_unknown_keys_are_warnings_with_hints(write_config: WriteConfig) -> None:
    path = write_config(WITH_UNKNOWN)

    config = load_config(path, env={})

    assert [str(warning) for warning in config.warnings] == [
        f'{path}:3: client.timout: unknown key (did you mean "timeout"?)',
        f'{path}:5: client.retry.max_attempt: unknown key (did you mean "max_attempts"?)',
        f'{path}:7: webhook_listener.secret: unknown key (did you mean "secret_key"?)',
        f"{path}:8: webhook_listener.tls: unknown key",
        f"{path}:10: schedules: unknown key",
        f"{path}:12: plugins: unknown key",
    ]
    assert config.warnings[2] == ConfigProblem(
        file=str(path),
        path="webhook_listener.secret",
        message='unknown key (did you mean "secret_key"?)',
        line=7,
    )


def test_unknown_values_stay_out_of_the_config(write_config: WriteConfig) -> None:
    config = load_config(write_config(WITH_UNKNOWN), env={})

    assert config.client.timeout.total_seconds() == 30
    assert config.client.retry.max_attempts == 3
    assert config.webhook_listener.secret_key is None
    assert "schedules" not in config.model_dump()
    assert "/var/lib/mfo" not in repr(config)


def test_warnings_are_logged(write_config: WriteConfig, caplog: pytest.LogCaptureFixture) -> None:
    path = write_config("logging:\n  levle: debug\n")

    with caplog.at_level(logging.WARNING, logger="mfo_client.config"):
        load_config(path, env={})

    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "mfo_client.config",
            logging.WARNING,
            f'{path}:2: logging.levle: unknown key (did you mean "level"?)',
        )
    ]


def test_warnings_travel_with_errors(write_config: WriteConfig) -> None:
    path = write_config("client:\n  retry:\n    max_attempts: 0\n    max_backof: 1s\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})

    assert [str(w) for w in caught.value.warnings] == [
        f'{path}:4: client.retry.max_backof: unknown key (did you mean "max_backoff"?)'
    ]


def test_warnings_do_not_change_equality() -> None:
    noisy = Config.from_mapping({"extra": 1}, env={})

    assert len(noisy.warnings) == 1
    assert noisy == Config()


def test_a_directly_built_config_has_no_warnings() -> None:
    assert Config().warnings == []


class _Source(BaseModel):
    secret_key: str = ""


class _Listener(BaseModel):
    port: int = 8080
    sources: dict[str, _Source] = Field(default_factory=dict)


class _Flow(BaseModel):
    name: str


class _Future(BaseModel):
    """A later version's shape: sections added as typed fields only."""

    webhook_listener: _Listener = Field(default_factory=_Listener)
    flows: list[_Flow] = Field(default_factory=list)


def test_fields_added_later_become_known_without_other_changes() -> None:
    """The unknown-key walk reads the models, including lists and mappings of sections."""
    from mfo_client.config._loader import load_data

    model, warnings = load_data(
        _Future,
        {
            "webhook_listener": {"sources": {"github": {"secret_key": "x", "algo": "sha1"}}},
            "flows": [{"name": "a"}, {"name": "b", "nmae": "c"}],
        },
        source="<future>",
        env={},
    )

    assert model.webhook_listener.sources["github"].secret_key == "x"
    assert [flow.name for flow in model.flows] == ["a", "b"]
    assert [str(w) for w in warnings] == [
        "<future>: webhook_listener.sources.github.algo: unknown key",
        '<future>: flows[1].nmae: unknown key (did you mean "name"?)',
    ]
