"""`mfo worker`: forwarders and flow runners without a listener."""

from __future__ import annotations

import typer

from mfo_client.cli._app import app
from mfo_client.cli._common import EXIT_INVALID, ConfigOption, load_or_exit
from mfo_client.delivery import StoreError
from mfo_client.observability import configure_logging
from mfo_client.service import ServiceConfigError, work
from mfo_client.webhook import SourceError


@app.command("worker")
def worker(config: ConfigOption) -> None:
    """Forward stored events and run triggered flows, without receiving webhooks.

    Pair it with `mfo serve --no-workers` listeners on a shared store (Redis); an SQLite store
    serves one process at a time.
    """
    cfg = load_or_exit(config)
    configure_logging(cfg.logging.level, cfg.logging.format)

    def announce() -> None:
        store = cfg.store
        where = store.path if store.backend == "sqlite" else f"redis (prefix {store.prefix})"
        typer.echo(f"mfo worker forwarding to {cfg.client.base_url}; store {where}", err=True)
        for trigger in cfg.triggers:
            typer.echo(f"trigger {trigger.name}: runs {trigger.flow}", err=True)

    try:
        work(cfg, on_ready=announce, config_path=str(config.resolve()))
    except (SourceError, StoreError, ServiceConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
