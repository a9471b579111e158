"""Real servers for tests: an ASGI app under uvicorn in a background thread, on loopback.

`run_devserver` is shared by the dev server's own tests and the API client tests, which need a
real peer; `run_app` serves any ASGI app the same way.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.types import ASGIApp

from mfo_client.config import Config
from mfo_client.devserver import DevServerSettings, create_app
from mfo_client.service import Service

__all__ = ["free_port", "run_app", "run_devserver", "run_service", "wait_http"]

STARTUP_TIMEOUT = 10.0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every response waits out a delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@contextmanager
def run_app(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` until the block ends; yield its base URL (no trailing slash).

    `port=0` picks any free port.
    """
    with _bind(host, port) as sock:
        bound = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none")
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
        )
        thread.start()
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.01)
            yield f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
        finally:
            server.should_exit = True
            thread.join(STARTUP_TIMEOUT)


@contextmanager
def run_devserver(settings: DevServerSettings) -> Iterator[str]:
    """Serve `create_app(settings)` on `settings.host` and `settings.port` (0: any free port);
    yield its base URL."""
    with run_app(create_app(settings), settings.host, settings.port) as url:
        yield url


@contextmanager
def run_service(config: Config, *, workers: bool = True) -> Iterator[tuple[str, Service]]:
    """Serve the main job (listener + forwarders) of `config`; yield its base URL and the
    running `Service` (its store, forwarder and client are live in the server's thread)."""
    service = Service(config, workers=workers)
    listener = config.webhook_listener
    with run_app(service.app, listener.host, listener.port) as url:
        yield url, service


def free_port() -> int:
    """A loopback port nothing listens on (free when this returns; nothing holds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 20.0) -> None:
    """Wait until `url` answers below 500 (a server in another process came up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")
