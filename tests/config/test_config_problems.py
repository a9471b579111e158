"""Every problem in a file is reported at once, each pinned to its file, line and key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mfo_client.config import ConfigError, ConfigProblem, load_config

WriteConfig = Callable[[str], Path]

BAD = """
# a file with one mistake per section
client:
  base_url: https://mfo.example.com/api
  timeout: 30x
  retry:
    max_attempts: 0
  credentials:
    password: "pw"
webhook_listener:
  port: 70000
logging:
  format: xml
"""


def errors_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return caught.value


def test_all_problems_are_reported_together_with_lines(write_config: WriteConfig) -> None:
    path = write_config(BAD)

    error = errors_of(path)

    assert str(error).splitlines() == [
        f"{path}:4: client.timeout: not a duration: "
        '"30x" (use Go-style durations such as 250ms, 30s, 1m, 1h30m)',
        f"{path}:6: client.retry.max_attempts: must be >= 1, got 0",
        f"{path}:7: client.credentials.username: required, but not set",
        f"{path}:10: webhook_listener.port: must be <= 65535, got 70000",
        f'{path}:12: logging.format: must be one of text, json, got "xml"',
    ]
    assert "pydantic" not in str(error)
    assert "Input should" not in str(error)


def test_problems_are_structured(write_config: WriteConfig) -> None:
    path = write_config(BAD)

    problem = errors_of(path).problems[1]

    assert problem == ConfigProblem(
        file=str(path),
        path="client.retry.max_attempts",
        message="must be >= 1, got 0",
        line=6,
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"

    assert str(errors_of(path)) == f"{path}: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert str(errors_of(tmp_path)) == f"{tmp_path}: is a directory, not a file"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"client:\n  base_url: caf\xe9\n")

    assert str(errors_of(path)) == f"{path}:2: not UTF-8 text; save the file as UTF-8"


def test_yaml_syntax_error_has_line_and_column(write_config: WriteConfig) -> None:
    path = write_config(
        """
        client:
          base_url: https://mfo.example.com/api
            timeout: 30s
        """
    )

    error = errors_of(path)

    assert str(error) == f"{path}:3:12: invalid YAML: mapping values are not allowed here"
    assert (error.problems[0].line, error.problems[0].column) == (3, 12)


def test_unclosed_quote(write_config: WriteConfig) -> None:
    path = write_config('client:\n  auth_token: "abc\n')

    assert str(errors_of(path)) == (
        f"{path}:3:1: invalid YAML: while scanning a quoted scalar, found unexpected end of stream"
    )


@pytest.mark.parametrize(
    ("text", "shown"), [("- client\n", "a list"), ("just text\n", '"just text"')]
)
def test_top_level_must_be_a_mapping(write_config: WriteConfig, text: str, shown: str) -> None:
    path = write_config(text)

    assert str(errors_of(path)) == (
        f"{path}:1: the top level must be a mapping of sections "
        "(client, webhook_listener, logging, store, delivery, metrics, flows, triggers), "
        f"got {shown}"
    )


def test_missing_key_points_at_its_section(write_config: WriteConfig) -> None:
    path = write_config(
        """
        client:
          base_url: https://mfo.example.com/api

          credentials:
            username: edge
        """
    )

    assert str(errors_of(path)) == f"{path}:4: client.credentials.password: required, but not set"


def test_merge_keys_point_at_the_anchor(write_config: WriteConfig) -> None:
    path = write_config(
        """
        defaults: &retry
          max_attempts: 0
        client:
          retry:
            <<: *retry
            max_backoff: 30s
        """
    )

    error = errors_of(path)

    assert [str(p) for p in error.problems] == [
        f"{path}:2: client.retry.max_attempts: must be >= 1, got 0"
    ]
    assert [str(w) for w in error.warnings] == [f"{path}:1: defaults: unknown key"]


def test_problem_without_location() -> None:
    problem = ConfigProblem(file=None, path="logging.level", message="must be one of ...")

    assert str(problem) == "logging.level: must be one of ..."
