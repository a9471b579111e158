"""`mfo dev-server`: run the reference MFO server locally (a thin layer over `devserver.run`)."""

from __future__ import annotations

import sqlite3
from typing import Annotated

import typer
from pydantic import ValidationError

from mfo_client.cli._app import app
from mfo_client.devserver import DevServerSettings, FaultSpec, run
from mfo_client.devserver.settings import DEFAULT_TOKEN

EXIT_INVALID = 2
EXIT_CANNOT_LISTEN = 1

# Settings fields whose option is named differently, so errors name what the user typed.
_OPTION_FOR_FIELD = {
    "username": "--user",
    "fail_rate": "--fail-rate",
    "status": "--fail-status",
    "latency_ms": "--latency-ms",
}


def _settings(
    *,
    host: str,
    port: int,
    db: str,
    token: str,
    user: str | None,
    password: str | None,
    token_ttl: float,
    job_duration: float,
    fail_rate: float | None,
    fail_status: int | None,
    latency_ms: int | None,
) -> DevServerSettings:
    faults = None
    if fail_rate is not None or fail_status is not None or latency_ms is not None:
        faults = FaultSpec(fail_rate=fail_rate, status=fail_status, latency_ms=latency_ms or 0)
    return DevServerSettings(
        host=host,
        port=port,
        db=db,
        token=token,
        username=user,
        password=password,
        token_ttl=token_ttl,
        job_duration=job_duration,
        faults=faults,
    )


@app.command("dev-server")
def dev_server(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8081,
    db: Annotated[
        str, typer.Option(help='SQLite file to keep data in, or ":memory:".')
    ] = ":memory:",
    token: Annotated[
        str, typer.Option(help="Static bearer token accepted on /api.")
    ] = DEFAULT_TOKEN,
    user: Annotated[
        str | None, typer.Option(help="Username for /auth/login (login is off without it).")
    ] = None,
    password: Annotated[str | None, typer.Option(help="Password for /auth/login.")] = None,
    token_ttl: Annotated[
        float, typer.Option(help="Lifetime of login-issued access tokens, seconds.")
    ] = 3600.0,
    job_duration: Annotated[
        float, typer.Option(help="Seconds a job takes from queued to finished.")
    ] = 0.5,
    fail_rate: Annotated[
        float | None, typer.Option(help="Fail this share (0..1) of API requests from the start.")
    ] = None,
    fail_status: Annotated[
        int | None, typer.Option(help="Status of injected failures (default 503).")
    ] = None,
    latency_ms: Annotated[
        int | None, typer.Option(help="Delay every API request by this many milliseconds.")
    ] = None,
) -> None:
    """Run the reference MFO server for development and tests (never for production).

    Faults can also be set while it runs: POST /_admin/faults.
    """
    try:
        settings = _settings(
            host=host,
            port=port,
            db=db,
            token=token,
            user=user,
            password=password,
            token_ttl=token_ttl,
            job_duration=job_duration,
            fail_rate=fail_rate,
            fail_status=fail_status,
            latency_ms=latency_ms,
        )
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field = str(error["loc"][-1]) if error["loc"] else ""
            option = _OPTION_FOR_FIELD.get(field, "--" + field.replace("_", "-"))
            typer.echo(f"error: {option if field else 'options'}: {error['msg']}", err=True)
        raise typer.Exit(EXIT_INVALID) from None

    def announce(url: str) -> None:
        login = f", login as {user!r}" if user else ""
        typer.echo(f"MFO dev server listening on {url} (token: {token}{login})")

    try:
        run(settings, on_ready=announce)
    except sqlite3.Error as exc:
        typer.echo(f"error: --db: cannot use {db!r}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_CANNOT_LISTEN) from None
