"""The main job, `mfo serve`: the webhook listener and the forwarders over one durable store.

Composition only: every part lives in its own package and is usable alone; this module builds
them from a `Config` and ties their lifetimes together (open the store, start forwarders,
serve; on shutdown stop intake first, let in-flight sends finish, close the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import uvicorn

from mfo_client._net import bind_socket, url_for
from mfo_client.api import AsyncMFOClient
from mfo_client.config import Config
from mfo_client.delivery import EventStore, SQLiteStore
from mfo_client.delivery._forwarder import Forwarder, ForwarderSettings
from mfo_client.webhook import build_sources, create_webhook_app

__all__ = ["Service", "build_store", "forwarder_settings", "serve"]

_log = logging.getLogger("mfo_client.service")
_PRUNE_EVERY = 3600.0


def build_store(config: Config, *, role: str = "serve") -> EventStore:
    """The store the config names; relative paths are taken from the working directory."""
    store = config.store
    return SQLiteStore(
        Path(store.path),
        fsync=store.fsync,
        max_pending=store.max_pending,
        retention=store.retention.total_seconds(),
        role="serve" if role == "serve" else "admin",
    )


def forwarder_settings(config: Config) -> ForwarderSettings:
    """Delivery settings; the lease outlasts the client's own retries of one send."""
    client, delivery = config.client, config.delivery
    attempts = client.retry.max_attempts
    worst_send = (
        client.timeout.total_seconds() * attempts
        + client.retry.max_backoff.total_seconds() * (attempts - 1)
        + 5.0
    )
    return ForwarderSettings(
        concurrency=delivery.concurrency,
        max_attempts=delivery.max_attempts,
        lease_time=max(delivery.lease_time.total_seconds(), worst_send),
        initial_backoff=delivery.initial_backoff.total_seconds(),
        max_backoff=delivery.max_backoff.total_seconds(),
    )


class Service:
    """Listener + forwarders + store, built from one configuration."""

    def __init__(self, config: Config, *, workers: bool = True) -> None:
        self.config = config
        self.sources = build_sources(list(config.webhook_listener.effective_sources()))
        self.store = build_store(config)
        self.client = AsyncMFOClient.from_config(config)
        self.forwarder = (
            Forwarder(self.store, self.client, forwarder_settings(config)) if workers else None
        )
        notify = self.forwarder.notify if self.forwarder is not None else None
        self.app = create_webhook_app(
            self.sources, self.store, on_accepted=notify, lifespan=self.lifespan
        )
        self._pruner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store (releasing a crashed predecessor's leases) and start forwarding."""
        for source in self.sources:
            if source.scheme == "none":
                _log.warning(
                    'webhook source "%s" at %s accepts UNSIGNED requests (scheme "none")',
                    source.name,
                    source.path,
                )
        await self.store.open()
        self._pruner = asyncio.create_task(self._prune_periodically())
        if self.forwarder is not None:
            self.forwarder.start()

    async def stop(self) -> None:
        """Stop forwarding (in-flight sends may finish), then close the client and the store."""
        if self._pruner is not None:
            self._pruner.cancel()
        if self.forwarder is not None:
            await self.forwarder.stop()
        await self.client.aclose()
        await self.store.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """start/stop as an ASGI lifespan, for running `app` under any ASGI server."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _prune_periodically(self) -> None:
        while True:
            try:
                removed = await self.store.prune()
                if removed:
                    _log.info("pruned %d delivered events past retention", removed)
            except Exception:
                _log.exception("pruning the store failed")
            await asyncio.sleep(_PRUNE_EVERY)


def serve(
    config: Config, *, workers: bool = True, on_ready: Callable[[str], None] | None = None
) -> None:
    """Run the main job in the foreground until SIGINT/SIGTERM.

    The store is opened before the port is served, so a store that cannot be used stops the
    start with its own error instead of a listener that refuses everything.
    """
    service = Service(config, workers=workers)
    listener = config.webhook_listener
    sock = bind_socket(listener.host, listener.port)
    server = uvicorn.Server(
        uvicorn.Config(
            service.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=15,
        )
    )

    async def main() -> None:
        await service.start()
        try:
            if on_ready is not None:
                on_ready(url_for(listener.host, sock.getsockname()[1]))
            await server.serve(sockets=[sock])
        finally:
            await service.stop()
            sock.close()

    asyncio.run(main())
