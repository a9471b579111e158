"""`mfo send FILE`: sign a saved payload as its sender would and post it to a listener.

The request is built by `mfo_client.webhook.signing` (`Target`, `build_delivery`); this module
only reads the options and the file, posts, and reports.

Exit codes: 0 the listener answered 2xx, 1 it answered anything else or could not be reached,
2 the command line, the file or the configuration is wrong.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Literal, NoReturn

import httpx
import typer

from mfo_client.cli._app import app
from mfo_client.cli._common import EXIT_INVALID, load_or_exit
from mfo_client.webhook.signing import Target, build_delivery, guess_event_type

__all__ = ["send"]

EXIT_FAILED = 1
TIMEOUT = 10.0
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")

SendScheme = Literal["github", "standard", "stripe", "slack", "shopify", "none"]


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command("send")
def send(
    file: Annotated[
        Path,
        typer.Argument(help="The payload to post, sent as its exact bytes.", show_default=False),
    ],
    url: Annotated[
        str | None,
        typer.Option(
            help="The listener URL, e.g. http://127.0.0.1:8080/webhook (default: from --config).",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="MFO_CONFIG",
            help="Take URL, scheme and secret from this YAML configuration (default: $MFO_CONFIG).",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help='The configured source to send to (default: the only one, or "default").',
            show_default=False,
        ),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(help="The signing secret (default: the source's first).", show_default=False),
    ] = None,
    scheme: Annotated[
        SendScheme | None,
        typer.Option(
            help="How to sign (default: the source's scheme, else github).", show_default=False
        ),
    ] = None,
    event_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="The event type header, e.g. push (default: <event> of a file named "
            "<event>.<variant>.json; none for a {type, payload} body).",
            show_default=False,
        ),
    ] = None,
    delivery_id: Annotated[
        str | None,
        typer.Option(help="The delivery id (default: a fresh uuid4).", show_default=False),
    ] = None,
    content_type: Annotated[
        Literal["json", "form"],
        typer.Option(help="json, or form: payload=<urlencoded file>, as GitHub's form mode."),
    ] = "json",
) -> None:
    """Sign FILE as its sender would and POST it; print the status and the response body.

    Give --url and --secret, or --config for a configured source (the options override it).
    """
    target = _target(url, config, source, scheme, secret)
    try:
        body = file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}", EXIT_INVALID)
    try:
        delivery = build_delivery(
            target,
            body,
            event_type=event_type if event_type is not None else guess_event_type(file.name, body),
            delivery_id=delivery_id,
            content_type=content_type,
        )
    except ValueError as exc:
        _fail(str(exc), EXIT_INVALID)

    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            response = client.post(delivery.url, content=delivery.body, headers=delivery.headers)
    except httpx.ConnectError as exc:
        reason = _ERRNO.sub("", str(exc)) or type(exc).__name__
        _fail(f"cannot connect to {delivery.url}: {reason}", EXIT_FAILED)
    except httpx.HTTPError as exc:
        _fail(f"sending to {delivery.url} failed: {exc or type(exc).__name__}", EXIT_FAILED)
    typer.echo(f"{response.status_code} {response.reason_phrase}")
    if response.text:
        typer.echo(response.text)
    if not response.is_success:
        raise typer.Exit(EXIT_FAILED)


def _target(
    url: str | None,
    config: Path | None,
    source: str | None,
    scheme: str | None,
    secret: str | None,
) -> Target:
    """Where and how to send, from the configuration and the options overriding it."""
    if url is not None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            _fail(f"--url {url!r} is not a URL: {exc}", EXIT_INVALID)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            _fail(f"--url must be an http:// or https:// URL, not {url!r}", EXIT_INVALID)
    if config is None:
        if source is not None:
            _fail("--source names a configured source: give --config FILE too", EXIT_INVALID)
        if url is None:
            _fail("give --url URL, or --config FILE to send to a configured source", EXIT_INVALID)
        target = Target.for_scheme(url, scheme or "github")
    else:
        cfg = load_or_exit(config)
        try:
            target = Target.from_config(cfg.webhook_listener, source, url=url)
        except ValueError as exc:
            _fail(f"{config}: {exc}", EXIT_INVALID)
        if scheme is not None and scheme != target.scheme:
            target = Target.for_scheme(target.url, scheme, target.secret)
    if secret is not None:
        target = dataclasses.replace(target, secret=secret)
    if target.scheme != "none" and not target.secret:
        _fail(f"scheme {target.scheme!r} signs with a secret: give --secret", EXIT_INVALID)
    return target
