"""`mfo runs resume` with the config file a run recorded: the run's MFO server is used again
without `--config`, and a recorded config that is gone stops the resume."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from typer.testing import CliRunner

from mfo_client.cli import app
from mfo_client.devserver import DevServerSettings
from tests._servers import free_port, run_devserver

TOKEN = "dev-token"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No MFO_* settings of the machine reach the commands; logging is put back after them."""
    for name in list(os.environ):
        if name.upper().startswith("MFO_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def mfo(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def write_config(path: Path, port: int) -> Path:
    path.write_text(
        f"""client:
  base_url: "http://127.0.0.1:{port}/api"
  auth_token: "{TOKEN}"
  retry: {{max_attempts: 1}}
""",
        encoding="utf-8",
    )
    return path


FLOW = """name: notify
tasks:
  - id: greet
    type: simple_log_task
    config: {log_message: "hello"}
    successors: [send]
  - id: send
    type: mfo_event_send_task
    config: {event_type: "flow.resumed", payload: {n: 1}}
"""


def test_resume_uses_the_config_the_run_recorded(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    port = free_port()
    config = write_config(tmp_path / "config.yaml", port)

    code, _, err = mfo("flow", "run", str(flow), "--config", str(config), "--history", str(db))
    assert code == 1, err  # nothing listens on the server's port yet
    run_id = err.split()[1]
    code, out, err = mfo("runs", "show", run_id, "--json", "--history", str(db))
    assert code == 0 and json.loads(out)["config_path"] == str(config.resolve())
    code, out, err = mfo("runs", "show", run_id, "--history", str(db))
    assert f"config    {config.resolve()}\n" in out

    with run_devserver(DevServerSettings(port=port, token=TOKEN)) as url:
        code, out, err = mfo("runs", "resume", run_id, "--json", "--history", str(db))
        assert code == 0, err
        assert f"using the config the run recorded: {config.resolve()}" in err
        event_id = json.loads(out)["tasks"]["send"]["outputs"]["eventID"]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        got = httpx.get(f"{url}/api/events/{event_id}", headers=headers, timeout=10)
        assert got.status_code == 200, got.text

        # A second run whose config is gone by the time it is resumed.
        other = write_config(tmp_path / "other.yaml", free_port())
        code, _, err = mfo("flow", "run", str(flow), "--config", str(other), "--history", str(db))
        assert code == 1, err
        second = err.split()[1]
        other.unlink()
        code, _, err = mfo("runs", "resume", second, "--history", str(db))
        assert code == 2
        assert f'run "{second}" used the config {other.resolve()}, which no longer exists' in err
        assert "pass --config FILE" in err
        code, out, _ = mfo("runs", "show", second, "--history", str(db))
        assert "(no longer exists)" in out

        code, out, err = mfo(
            "runs", "resume", second, "--config", str(config), "--json", "--history", str(db)
        )
        assert code == 0, err
        assert "using the config the run recorded" not in err
        code, out, _ = mfo("runs", "show", second, "--json", "--history", str(db))
        assert json.loads(out)["config_path"] == str(config.resolve())  # what it ran with last
