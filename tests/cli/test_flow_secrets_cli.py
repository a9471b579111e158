"""`mfo flow run` with `${VAR}` secrets: the request carries the token, nothing printed or kept
does (`--json`, the progress lines, `mfo runs show`, the trace, the history file)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from mfo_client.cli import app
from tests._servers import run_app

runner = CliRunner()

FLOW = """\
name: Secretive
secrets: [CLI_TOKEN]
env: [BASE_URL]
tasks:
  - id: fetch
    type: http_get_task
    config:
      url: "${BASE_URL}/echo"
      headers: {Authorization: "Bearer ${CLI_TOKEN}"}
      allow_hosts: ["127.0.0.1"]
  - id: say
    type: simple_log_task
    dependencies: [fetch]
    config: {log_message: "got {{ fetch.body.authorization }}, given {{ input.key }}"}
  - id: fail
    type: http_get_task
    config: {url: "${BASE_URL}/missing?key=${CLI_TOKEN}", allow_hosts: ["127.0.0.1"]}
"""


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, list[str | None]]]:
    received: list[str | None] = []

    async def handler(request: Request) -> Response:
        received.append(request.headers.get("authorization"))
        return JSONResponse({"authorization": request.headers.get("authorization")})

    with run_app(Starlette(routes=[Route("/echo", handler)])) as url:
        yield url, received


def test_run_show_and_trace_never_print_the_secret(
    echo: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    url, received = echo
    token = "cli_" + secrets.token_hex(16)
    mfo_token = "mfo_" + secrets.token_hex(16)
    flow = tmp_path / "secretive.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text("client:\n  auth_token: ${MFO_TEST_AUTH}\n", encoding="utf-8")
    db = tmp_path / "runs.db"
    env = {"CLI_TOKEN": token, "BASE_URL": url, "MFO_TEST_AUTH": mfo_token}
    ran = runner.invoke(
        app,
        [
            *("flow", "run", str(flow), "--history", str(db), "--json"),
            *("--config", str(config), "--input", f"input.key={mfo_token}"),
        ],
        env=env,
    )
    assert ran.exit_code == 1, ran.output  # `fail` fails
    assert received[-1] == f"Bearer {token}"
    result = json.loads(ran.stdout)
    assert result["tasks"]["fetch"]["outputs"]["body"] == {"authorization": "Bearer ***"}
    # The config's token (a secret of the config) is hidden too, though it came as input.
    assert result["tasks"]["say"]["outputs"] == {"message": "got Bearer ***, given ***"}
    assert (
        result["tasks"]["fail"]["error"] == f"GET {url}/missing?key=*** returned HTTP 404 Not Found"
    )
    assert token not in ran.output and mfo_token not in ran.output

    trace = tmp_path / "trace.json"
    shown = runner.invoke(
        app,
        ["runs", "show", result["run_id"], "--history", str(db), "--json", "--trace", str(trace)],
    )
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    tasks = {t["task_id"]: t for t in record["tasks"]}
    assert tasks["fetch"]["outputs"]["body"] == {"authorization": "Bearer ***"}
    assert tasks["fetch"]["status"] == "succeeded"
    assert token not in shown.output
    assert "missing?key=***" in trace.read_text(encoding="utf-8")
    assert token not in trace.read_text(encoding="utf-8")
    for file in tmp_path.glob("runs.db*"):
        assert token.encode() not in file.read_bytes()
        assert mfo_token.encode() not in file.read_bytes()

    # Progress lines and the summary table, without --json.
    plain = runner.invoke(app, ["flow", "run", str(flow), "--no-history"], env=env)
    assert plain.exit_code == 1
    assert "missing?key=***" in plain.output
    assert token not in plain.output


def test_dry_run_shows_secrets_as_stars(tmp_path: Path) -> None:
    flow = tmp_path / "secretive.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    token = "cli_" + secrets.token_hex(16)
    env = {"CLI_TOKEN": token, "BASE_URL": "http://127.0.0.1:9"}
    dry = runner.invoke(
        app, ["flow", "run", str(flow), "--dry-run", "--input", "input.key=k"], env=env
    )
    assert dry.exit_code == 0, dry.output
    shown = " ".join(dry.stdout.split())  # as one line, however the console wrapped it
    assert '"Authorization": "Bearer ***"' in shown
    assert '"url": "http://127.0.0.1:9/echo"' in shown
    assert token not in dry.output


def test_a_missing_variable_names_the_variable_task_and_file(tmp_path: Path) -> None:
    flow = tmp_path / "secretive.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    ran = runner.invoke(
        app, ["flow", "run", str(flow), "--no-history", "--json"], env={"BASE_URL": "http://x"}
    )
    assert ran.exit_code == 1
    error = json.loads(ran.stdout)["tasks"]["fetch"]["error"]
    assert error.startswith(
        f'flow "Secretive" ({flow}), task "fetch", config.headers.Authorization'
    )
    assert 'environment variable "CLI_TOKEN" is not set' in error
