"""The root `mfo` command; command groups attach themselves from their own modules."""

from __future__ import annotations

from typing import Annotated

import typer

from mfo_client import __version__

app = typer.Typer(
    name="mfo",
    help="MFO client: webhook intake, forwarding to the MFO server, and local taskflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mfo-client {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """MFO client: webhook intake, forwarding to the MFO server, and local taskflows."""
