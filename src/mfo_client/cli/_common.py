"""Pieces every command shares: the --config option and loading it with friendly errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from mfo_client.config import Config, ConfigError, load_config
from mfo_client.delivery import EventStore
from mfo_client.service import build_store

__all__ = ["EXIT_INVALID", "ConfigOption", "load_or_exit", "with_admin_store"]

EXIT_INVALID = 2
T = TypeVar("T")

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="MFO_CONFIG",
        help="The YAML configuration file (default: $MFO_CONFIG).",
        show_default=False,
    ),
]


def load_or_exit(file: Path) -> Config:
    """The configuration, with warnings on stderr; every problem on stderr and exit 2 if bad."""
    try:
        config = load_config(file)
    except ConfigError as exc:
        for warning in exc.warnings:
            typer.echo(f"warning: {warning}", err=True)
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    for warning in config.warnings:
        typer.echo(f"warning: {warning}", err=True)
    return config


async def with_admin_store(config: Config, action: Callable[[EventStore], Awaitable[T]]) -> T:
    """Run `action` on the configured store opened for administration (beside a running serve)."""
    store = build_store(config, role="admin")
    await store.open()
    try:
        return await action(store)
    finally:
        await store.close()
