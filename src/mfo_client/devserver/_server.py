"""Run the dev server in the foreground with uvicorn."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from mfo_client.devserver._app import create_app
from mfo_client.devserver.settings import DevServerSettings

__all__ = ["run"]


def _bind(host: str, port: int) -> socket.socket:
    """Bind before starting so port 0 resolves to a real port that can be announced."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every response waits out a delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(
    settings: DevServerSettings,
    *,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "info",
) -> None:
    """Serve until interrupted; `on_ready` gets the base URL once the port is bound."""
    sock = _bind(settings.host, settings.port)
    try:
        app = create_app(settings)
        if on_ready is not None:
            on_ready(base_url(settings.host, sock.getsockname()[1]))
        config = uvicorn.Config(
            app, log_level=log_level, access_log=log_level == "debug", ws="none"
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
