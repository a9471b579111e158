"""`mfo serve`: the main job (webhook listener, forwarders and flow runners over the store)."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from mfo_client.cli._app import app
from mfo_client.cli._common import EXIT_INVALID, ConfigOption, load_or_exit
from mfo_client.delivery import StoreError
from mfo_client.observability import configure_logging
from mfo_client.service import ServiceConfigError
from mfo_client.service import serve as run_service
from mfo_client.webhook import SourceError

EXIT_CANNOT_LISTEN = 1


@app.command("serve")
def serve(
    config: ConfigOption,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Run the listener only; forward nothing.")
    ] = False,
) -> None:
    """Receive webhooks, store them durably, forward them, and run the flows of their triggers."""
    cfg = load_or_exit(config)
    configure_logging(cfg.logging.level, cfg.logging.format)
    sources_text = ", ".join(
        f"{s.path} (source {s.name}, scheme {s.scheme})"
        for s in cfg.webhook_listener.effective_sources()
    )

    def announce(url: str) -> None:
        typer.echo(f"mfo serve listening on {url}: {sources_text}", err=True)
        store = cfg.store
        where = store.path if store.backend == "sqlite" else f"redis (prefix {store.prefix})"
        if no_workers:
            typer.echo(
                f"listener only (--no-workers): nothing forwarded here; store {where}", err=True
            )
        else:
            typer.echo(f"forwarding to {cfg.client.base_url}; store {where}", err=True)
        for trigger in cfg.triggers:
            typer.echo(f"trigger {trigger.name}: runs {trigger.flow}", err=True)
        if cfg.triggers:
            history = cfg.flows.history if store.backend == "sqlite" else "redis"
            see = f"mfo runs list --config {shlex.quote(str(config))}"
            typer.echo(f"flow runs are recorded in {history} (see them: {see})", err=True)

    try:
        run_service(
            cfg, workers=not no_workers, on_ready=announce, config_path=str(config.resolve())
        )
    except (SourceError, StoreError, ServiceConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        where = f"{cfg.webhook_listener.host}:{cfg.webhook_listener.port}"
        typer.echo(f"error: cannot listen on {where}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_LISTEN) from None
