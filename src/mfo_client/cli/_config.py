"""`mfo config ...`: inspect the configuration the way the agent will see it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from mfo_client.cli._app import app
from mfo_client.cli._common import EXIT_INVALID, load_or_exit
from mfo_client.webhook import SourceError, build_source

config_app = typer.Typer(
    help="Check the configuration file and show the settings in effect.", no_args_is_help=True
)
app.add_typer(config_app, name="config")


@config_app.command("check")
def check(
    file: Annotated[
        Path,
        typer.Argument(
            envvar="MFO_CONFIG",
            help="The YAML configuration file (default: $MFO_CONFIG).",
            show_default=False,
        ),
    ],
) -> None:
    """Validate FILE with MFO_* overrides applied; print the effective settings, secrets masked.

    Exits 2 if the configuration cannot be used, listing every problem on stderr.
    """
    config = load_or_exit(file)
    problems = []
    for source in config.webhook_listener.effective_sources():
        try:
            build_source(source)
        except SourceError as exc:
            problems.append(str(exc))
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(yaml.safe_dump(config.redacted_dict(), sort_keys=False), nl=False)
