"""The main job, `mfo serve`: the webhook listener, the forwarders and the flow runners over
one durable store.

Composition only: every part lives in its own package and is usable alone; this module builds
them from a `Config` and ties their lifetimes together (open the store, start forwarders and
runners, serve; on shutdown stop intake first, let in-flight sends and runs finish for a grace
period, close the store). `TriggerDispatch` connects the listener to the triggers: it plans
each event's flow jobs, and answers with a run's outputs for triggers with `respond: outputs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mfo_client._net import bind_socket, url_for
from mfo_client.api import AsyncMFOClient, CircuitBreakerRegistry, RetryPolicy
from mfo_client.config import Config
from mfo_client.delivery import (
    Accepted,
    EventStore,
    FlowJob,
    Forwarder,
    ForwarderSettings,
    IncomingEvent,
    JobAccepted,
    RedisStore,
    SQLiteStore,
    flow_kind,
)
from mfo_client.flows import FlowClients, FlowExecutor, TaskRegistry, open_history
from mfo_client.flows.tasks import builtin_registry
from mfo_client.observability import CONTENT_TYPE_LATEST, Metrics
from mfo_client.triggers import TriggerError, Triggers, load_triggers
from mfo_client.webhook import build_sources, create_webhook_app
from mfo_client.worker import FlowRunner, RunnerSettings, RunOutcome, wait_for_run

__all__ = [
    "Service",
    "ServiceConfigError",
    "TriggerDispatch",
    "build_store",
    "create_app",
    "forwarder_settings",
    "runner_settings",
    "serve",
    "task_registry",
    "work",
]

_log = logging.getLogger("mfo_client.service")
_PRUNE_EVERY = 3600.0
_PRUNE_RUNS = 500
"""Runs the run history deletes per call: other writes go between two calls."""


def build_store(config: Config, *, role: str = "serve") -> EventStore:
    """The store the config names; relative paths are taken from the working directory."""
    store = config.store
    if store.backend == "redis":
        assert store.url is not None  # the config refuses redis without a url
        return RedisStore(
            store.url.get_secret_value(),
            prefix=store.prefix,
            max_pending=store.max_pending,
            retention=store.retention.total_seconds(),
            role="serve" if role == "serve" else "admin",
            wait_replicas=store.wait_replicas,
            wait_timeout=store.wait_timeout.total_seconds(),
        )
    return SQLiteStore(
        Path(store.path),
        fsync=store.fsync,
        max_pending=store.max_pending,
        retention=store.retention.total_seconds(),
        role="serve" if role == "serve" else "admin",
    )


def forwarder_settings(config: Config) -> ForwarderSettings:
    """Delivery settings; a lease outlasts one send (a login, then the request)."""
    client, delivery = config.client, config.delivery
    worst_send = client.timeout.total_seconds() * 2 + 5.0
    return ForwarderSettings(
        concurrency=delivery.concurrency,
        max_attempts=delivery.max_attempts,
        lease_time=max(delivery.lease_time.total_seconds(), worst_send),
        initial_backoff=delivery.initial_backoff.total_seconds(),
        max_backoff=delivery.max_backoff.total_seconds(),
    )


def runner_settings(config: Config, config_path: str | None = None) -> RunnerSettings:
    flows, delivery = config.flows, config.delivery
    return RunnerSettings(
        config_path=config_path,
        max_runs=flows.max_runs,
        lease_time=flows.lease_time.total_seconds(),
        initial_backoff=delivery.initial_backoff.total_seconds(),
        max_backoff=delivery.max_backoff.total_seconds(),
    )


def task_registry() -> TaskRegistry:
    """The built-in task types and the installed task packs (`mfo_client.tasks` entry points)."""
    registry = builtin_registry()
    registry.load_entry_points()
    return registry


class ServiceConfigError(ValueError):
    """The configuration cannot run the main job; the message says what to set."""


class TriggerDispatch:
    """The listener's side of the triggers: which flow jobs an event asks for, and the
    synchronous answer of `respond: outputs` triggers."""

    def __init__(
        self,
        triggers: Triggers,
        wait_for: Callable[[str, float], Awaitable[RunOutcome | None]] | None,
        ack_status: Mapping[str, int] | None = None,
    ) -> None:
        """`wait_for(run_id, timeout)` tells how a run ended (None: not yet); None when
        nothing can run the jobs meanwhile (then the answer is the plain acknowledgement).
        `ack_status` is each source's acknowledgement status (default 202)."""
        self.triggers = triggers
        self.wait_for = wait_for
        self.ack_status = dict(ack_status or {})

    def plan(self, item: IncomingEvent) -> list[FlowJob]:
        return self.triggers.plan(item)

    async def respond(self, item: IncomingEvent, accepted: Accepted) -> Response | None:
        """For `respond: outputs` triggers: wait for their runs (each up to its trigger's
        `respond_timeout`) and answer 200 with their outputs, or, if some have not ended by
        then, the source's acknowledgement status with their run ids."""
        waits: list[tuple[JobAccepted, float]] = []
        for job in accepted.jobs:
            trigger = self.triggers.get(job.trigger)
            if trigger is not None and trigger.config.respond == "outputs":
                waits.append((job, trigger.config.respond_timeout.total_seconds()))
        wait_for = self.wait_for
        if not waits or wait_for is None:
            return None
        outcomes = await asyncio.gather(*(wait_for(job.id, t) for job, t in waits))
        runs = [_run_answer(job, o) for (job, _), o in zip(waits, outcomes, strict=True)]
        done = all(o is not None for o in outcomes)
        body = {"id": accepted.id, "duplicate": accepted.duplicate, "runs": runs}
        return JSONResponse(
            body, status_code=200 if done else self.ack_status.get(item.source, 202)
        )


def _run_answer(job: JobAccepted, outcome: RunOutcome | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"trigger": job.trigger, "run_id": job.id}
    if job.duplicate:
        answer["duplicate"] = True
    if outcome is None:
        return {**answer, "status": "running"}
    answer.update(status=outcome.status, outputs=outcome.outputs)
    if outcome.error:
        answer["error"] = outcome.error
    return answer


class Service:
    """Listener + forwarders + store, built from one configuration."""

    def __init__(
        self, config: Config, *, workers: bool = True, config_path: str | None = None
    ) -> None:
        """`config_path` (the file `config` came from) is recorded with each triggered run,
        so `mfo runs resume` reaches the same MFO server."""
        self.config = config
        self.sources = build_sources(list(config.webhook_listener.effective_sources()))
        client = config.client
        token = client.auth_token.get_secret_value().strip() if client.auth_token else ""
        if workers and not token and client.credentials is None:
            raise ServiceConfigError(
                "client.auth_token (or client.credentials) is not set: the MFO server would "
                "refuse every forwarded event; set it, e.g. auth_token: ${MFO_TOKEN}"
            )
        self.store = build_store(config)
        # One try per send: the outbox retries with its own, persistent schedule, and the
        # breaker is this service's own, whatever else the process talks to.
        self.client = AsyncMFOClient.from_config(
            config, retry=RetryPolicy(max_attempts=1), breakers=CircuitBreakerRegistry()
        )
        self.metrics = Metrics()
        self.forwarder = (
            Forwarder(self.store, self.client, forwarder_settings(config), metrics=self.metrics)
            if workers
            else None
        )
        self.registry = task_registry()
        try:
            self.triggers = load_triggers(config, self.registry)
        except TriggerError as exc:
            raise ServiceConfigError(
                "the triggers cannot run:\n" + "\n".join(f"  {p}" for p in exc.problems)
            ) from None
        self.history = open_history(config) if len(self.triggers) else None
        self.flow_clients: FlowClients | None = None
        self.runner: FlowRunner | None = None
        if workers and self.history is not None:
            self.flow_clients = FlowClients.from_config(config)
            executor = FlowExecutor(self.registry, config.flows.concurrency, self.flow_clients)
            self.runner = FlowRunner(
                self.store,
                self.triggers,
                executor,
                self.history,
                runner_settings(config, config_path),
                metrics=self.metrics,
            )
        dispatch: TriggerDispatch | None = None
        if self.history is not None:
            history = self.history
            wait_for: Callable[[str, float], Awaitable[RunOutcome | None]] | None = None
            if self.runner is not None:
                wait_for = self.runner.wait_for
            elif config.store.backend != "sqlite":
                # A listener without workers waits on the run history the workers write.
                def wait_for(run_id: str, timeout: float) -> Awaitable[RunOutcome | None]:
                    return wait_for_run(history, run_id, timeout)
            else:
                _log.warning(
                    "the triggers' flow jobs are stored, but no process can run them while "
                    "this one serves the SQLite store without workers; runs start when "
                    "mfo serve runs with workers (or mfo worker) on this store"
                )
            ack = {s.name: s.ack_status for s in self.sources}
            dispatch = TriggerDispatch(self.triggers, wait_for, ack)
        metrics_cfg = config.metrics
        metrics_route = Route(metrics_cfg.path, self._metrics_endpoint)
        self.metrics_app = Starlette(routes=[metrics_route])
        on_listener = metrics_cfg.enabled and metrics_cfg.port is None
        self.app = create_webhook_app(
            self.sources,
            self.store,
            on_accepted=self._notify,
            dispatch=dispatch,
            lifespan=self.lifespan,
            metrics=self.metrics,
            readiness=self._readiness,
            extra_routes=[metrics_route] if on_listener else [],
        )
        self._pruner: asyncio.Task[None] | None = None

    def _notify(self, accepted: Accepted) -> None:
        if self.forwarder is not None:
            self.forwarder.notify()
        if self.runner is not None and any(not job.duplicate for job in accepted.jobs):
            self.runner.notify()

    def _readiness(self) -> dict[str, Any]:
        breaker = self.client.breaker
        return {"mfo_server": {"url": self.client.base_url, "breaker": breaker.state.value}}

    async def _metrics_endpoint(self, _request: Request) -> Response:
        stats = await self.store.stats()
        self.metrics.set_outbox(stats.pending, stats.in_flight, stats.delivered, stats.dead)
        if len(self.triggers):
            jobs = await self.store.stats([flow_kind(t.name) for t in self.triggers])
            self.metrics.set_flow_jobs(jobs.pending, jobs.in_flight, jobs.delivered, jobs.dead)
        breaker = self.client.breaker
        self.metrics.set_breaker(breaker.name, breaker.state.value)
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

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
        if self.runner is not None:
            self.runner.start()

    async def stop(self) -> None:
        """Stop forwarding and running flows (what is in progress may finish for a grace
        period), then close the clients, the run history and the store."""
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        stopping = []
        if self.forwarder is not None:
            stopping.append(self.forwarder.stop())
        if self.runner is not None:
            stopping.append(self.runner.stop())
        await asyncio.gather(*stopping)
        await self.client.aclose()
        if self.flow_clients is not None:
            await self.flow_clients.aclose()
        if self.runner is not None:
            self.runner.executor.close()
        if self.history is not None:
            await self.history.close()
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
            if self.history is not None:
                # The runs that ended before the store's retention, as its events do.
                cutoff = time.time() - self.config.store.retention.total_seconds()
                try:
                    runs = 0
                    while (step := await self.history.prune(cutoff, _PRUNE_RUNS)) > 0:
                        runs += step
                        if step < _PRUNE_RUNS:
                            break
                    if runs:
                        _log.info("pruned %d runs that ended past retention from the history", runs)
                except Exception:
                    _log.exception("pruning the run history failed")
            await asyncio.sleep(_PRUNE_EVERY)


def create_app(config: Config, *, workers: bool = True) -> Starlette:
    """The main job as an ASGI app, for running under a server of your own (its lifespan opens
    the store and starts the forwarders)."""
    return Service(config, workers=workers).app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` handles signals once for all servers,
    and exits 0 after a graceful stop (uvicorn re-raises the signal, exiting -15)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn(app: Starlette, config: Config) -> _Server:
    listener = config.webhook_listener
    return _Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=15,
            proxy_headers=listener.proxy_headers,
            forwarded_allow_ips=list(listener.forwarded_allow_ips),
            root_path=listener.root_path,
        )
    )


def serve(
    config: Config,
    *,
    workers: bool = True,
    on_ready: Callable[[str], None] | None = None,
    config_path: str | None = None,
) -> None:
    """Run the main job in the foreground until SIGINT/SIGTERM.

    The store is opened before the port is served, so a store that cannot be used stops the
    start with its own error instead of a listener that refuses everything. On a signal,
    intake stops, requests in progress finish, forwarders hand back what they hold, and the
    store is closed.
    """
    service = Service(config, workers=workers, config_path=config_path)
    listener, metrics = config.webhook_listener, config.metrics
    sock = bind_socket(listener.host, listener.port)
    servers = [(_uvicorn(service.app, config), sock)]
    if metrics.enabled and metrics.port is not None:
        metrics_sock = bind_socket(metrics.host or listener.host, metrics.port)
        servers.append((_uvicorn(service.metrics_app, config), metrics_sock))

    def on_signal(sig: signal.Signals) -> None:
        for server, _ in servers:
            if server.should_exit and sig is signal.SIGINT:
                server.force_exit = True  # a second Ctrl-C: stop waiting for requests
            server.should_exit = True

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        await service.start()
        try:
            if on_ready is not None:
                on_ready(url_for(listener.host, sock.getsockname()[1]))
            await asyncio.gather(*(server.serve(sockets=[s]) for server, s in servers))
        finally:
            await service.stop()
            for _, s in servers:
                s.close()

    asyncio.run(main())


def work(
    config: Config,
    *,
    on_ready: Callable[[], None] | None = None,
    config_path: str | None = None,
) -> None:
    """Run forwarders and flow runners without a listener until SIGINT/SIGTERM (`mfo worker`).

    Several workers share a store's work when the store is shared (Redis); an SQLite store is
    one process's, so there the worker replaces `mfo serve`'s own workers. Metrics are served
    when `metrics.port` is set.
    """
    service = Service(config, workers=True, config_path=config_path)
    metrics = config.metrics
    servers: list[tuple[_Server, socket.socket]] = []
    if metrics.enabled and metrics.port is not None:
        host = metrics.host or config.webhook_listener.host
        servers.append((_uvicorn(service.metrics_app, config), bind_socket(host, metrics.port)))

    async def main() -> None:
        stopping = asyncio.Event()

        def on_signal() -> None:
            stopping.set()
            for server, _ in servers:
                server.should_exit = True

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await service.start()
        try:
            if on_ready is not None:
                on_ready()
            await asyncio.gather(
                stopping.wait(), *(server.serve(sockets=[s]) for server, s in servers)
            )
        finally:
            await service.stop()
            for _, s in servers:
                s.close()

    asyncio.run(main())
