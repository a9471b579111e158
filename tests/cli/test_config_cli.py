"""`mfo config check FILE`: the effective settings on stdout, problems on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mfo_client.cli import app
from tests._seed import EXPECTED_SEED_OUTPUT, SEED, SEED_SECRETS


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment minus any MFO_ settings of the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MFO_")}
    env.update(overrides)
    return env


def run_mfo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mfo_client", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
        check=False,
    )


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, **env: str | None) -> tuple[int, str, str]:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.upper().startswith("MFO_")}
    result = runner.invoke(app, list(args), env={**unset, **env})
    return result.exit_code, result.stdout, result.stderr


def test_check_seed_file_in_a_real_process() -> None:
    result = run_mfo("config", "check", str(SEED))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert yaml.safe_load(result.stdout) == EXPECTED_SEED_OUTPUT
    assert "auth_token: '***'" in result.stdout
    assert "secret_key: '***'" in result.stdout
    for secret in SEED_SECRETS:
        assert secret not in result.stdout


def test_check_bad_file_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "client:\n"
        "  timeout: 30x\n"
        "  retry:\n"
        "    max_attempts: 0\n"
        "webhook_listener:\n"
        "  secret: s3cr3t\n"
        "logging:\n"
        "  format: xml\n",
        encoding="utf-8",
    )

    result = run_mfo("config", "check", str(path))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'warning: {path}:6: webhook_listener.secret: unknown key (did you mean "secret_key"?)',
        f"error: {path}:2: client.timeout: not a duration: "
        '"30x" (use Go-style durations such as 250ms, 30s, 1m, 1h30m)',
        f"error: {path}:4: client.retry.max_attempts: must be >= 1, got 0",
        f'error: {path}:8: logging.format: must be one of text, json, got "xml"',
    ]


def test_env_overrides_apply_in_a_real_process() -> None:
    result = run_mfo(
        "config", "check", str(SEED), MFO_CLIENT__AUTH_TOKEN="from-env", MFO_LOGGING__LEVEL="WARN"
    )

    assert result.returncode == 0, result.stderr
    output = yaml.safe_load(result.stdout)
    assert output["client"]["auth_token"] == "***"
    assert output["logging"]["level"] == "warning"
    assert "from-env" not in result.stdout


def test_warnings_go_to_stderr_and_exit_zero(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("webhook_listener:\n  secret: abc\n  port: '9000'\n", encoding="utf-8")

    code, out, err = invoke(runner, "config", "check", str(path), MFO_CLIENT__TIMEOT="1s")

    assert code == 0
    assert yaml.safe_load(out)["webhook_listener"]["port"] == 9000
    assert err.splitlines() == [
        f'warning: {path}:2: webhook_listener.secret: unknown key (did you mean "secret_key"?)',
        "warning: environment variable MFO_CLIENT__TIMEOT: client.timeot: "
        'unknown key (did you mean "MFO_CLIENT__TIMEOUT"?)',
    ]


def test_bad_env_value_names_the_variable(runner: CliRunner) -> None:
    code, out, err = invoke(
        runner, "config", "check", str(SEED), MFO_WEBHOOK_LISTENER__PORT="70000"
    )

    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        "error: environment variable MFO_WEBHOOK_LISTENER__PORT: webhook_listener.port: "
        'must be <= 65535, got "70000"'
    ]


def test_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    code, out, err = invoke(runner, "config", "check", str(path))

    assert (code, out) == (2, "")
    assert err == f"error: {path}: file not found\n"


def test_file_defaults_to_mfo_config(runner: CliRunner) -> None:
    code, out, _ = invoke(runner, "config", "check", MFO_CONFIG=str(SEED))

    assert code == 0
    assert yaml.safe_load(out) == EXPECTED_SEED_OUTPUT
