"""The `mfo` command line: thin typer commands over the library, one module per group."""

from __future__ import annotations

from mfo_client.cli import (  # noqa: F401  (registers the commands)
    _config,
    _devserver,
    _flow,
    _flow_run,
    _outbox,
    _runs,
    _send,
    _serve,
    _worker,
)
from mfo_client.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
