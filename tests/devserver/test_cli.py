"""`mfo dev-server`: flags map onto DevServerSettings; bad values exit 2 naming the flag."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mfo_client.cli import _devserver as command
from mfo_client.cli import app
from mfo_client.devserver import DevServerSettings, FaultSpec

runner = CliRunner()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[DevServerSettings]:
    """Capture what `run` would start, announcing a URL as the real one does."""
    calls: list[DevServerSettings] = []

    def fake_run(
        settings: DevServerSettings, *, on_ready: Callable[[str], None] | None = None
    ) -> None:
        calls.append(settings)
        if on_ready is not None:
            on_ready(f"http://{settings.host}:{settings.port or 40000}")

    monkeypatch.setattr(command, "run", fake_run)
    return calls


def test_defaults_and_the_announcement(started: list[DevServerSettings]) -> None:
    result = runner.invoke(app, ["dev-server"])
    assert result.exit_code == 0, result.output
    assert started == [DevServerSettings()]
    assert "listening on http://127.0.0.1:8081" in result.output
    assert "token: dev-token" in result.output


def test_every_flag(started: list[DevServerSettings]) -> None:
    result = runner.invoke(
        app,
        [
            "dev-server",
            "--host", "0.0.0.0",
            "--port", "0",
            "--db", "x.db",
            "--token", "t",
            "--user", "u",
            "--password", "p",
            "--token-ttl", "5",
            "--job-duration", "0.1",
            "--fail-rate", "0.3",
            "--fail-status", "502",
            "--latency-ms", "20",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert started == [
        DevServerSettings(
            host="0.0.0.0",
            port=0,
            db="x.db",
            token="t",
            username="u",
            password="p",
            token_ttl=5,
            job_duration=0.1,
            faults=FaultSpec(fail_rate=0.3, status=502, latency_ms=20),
        )
    ]
    assert "login as 'u'" in result.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--fail-rate", "2"], "--fail-rate"),
        (["--fail-status", "200"], "--fail-status"),
        (["--user", "u"], "options"),
        (["--port", "70000"], "--port"),
        (["--token-ttl", "0"], "--token-ttl"),
    ],
)
def test_bad_values_exit_2_naming_the_flag(
    started: list[DevServerSettings], args: list[str], flag: str
) -> None:
    result = runner.invoke(app, ["dev-server", *args])
    assert result.exit_code == 2
    assert f"error: {flag}" in result.output
    assert started == []


def test_unusable_database_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["dev-server", "--port", "0", "--db", str(tmp_path / "missing" / "x.db")]
    )
    assert result.exit_code == 2
    assert "error: --db" in result.output


def test_port_in_use_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["dev-server", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
