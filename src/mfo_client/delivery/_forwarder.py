"""Forwarders: drain the outbox into the MFO server, once in effect, never losing an event.

Each worker leases one due event, sends it with `events.send_event` (the event id is the
Idempotency-Key, so a resend after a crash is applied once), then settles the lease:

- accepted                               -> complete (also when the answer's body is not what
                                            the contract says: the server did store the event)
- 400, 413, 422                          -> dead letter at once: the server refused this event
- anything else (5xx, 429, 401, 403,     -> retry later with a growing, jittered delay (at least
  404, 3xx, connection, timeout, ...)       the server's Retry-After): a wrong token or URL is
                                            fixed by config, and the events must still be there
- circuit open                           -> the lease goes back uncounted; workers wait it out
- shutdown mid-send                      -> the lease goes back uncounted
- `delivery.max_attempts` failures        -> dead letter with the last error

Idle workers sleep until the next event is due or the listener signals a new one, so an empty
outbox costs no polling traffic and a new event starts moving at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from dataclasses import dataclass

from pydantic import ValidationError

from mfo_client.api import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    AsyncMFOClient,
    CircuitOpenError,
    Event,
)
from mfo_client.delivery._models import FORWARD, Lease
from mfo_client.delivery._store import EventStore
from mfo_client.observability import Metrics

__all__ = ["DEAD_LETTER_STATUSES", "Forwarder", "ForwarderSettings"]

_log = logging.getLogger("mfo_client.delivery")

DEAD_LETTER_STATUSES = frozenset({400, 413, 422})
_KINDS = (FORWARD,)
"""Forwarders take forward jobs only: flow runs are the flow runner's."""


@dataclass(frozen=True, slots=True)
class ForwarderSettings:
    concurrency: int = 4
    max_attempts: int = 20
    lease_time: float = 60.0
    initial_backoff: float = 1.0
    max_backoff: float = 600.0

    def redelivery_delay(self, attempts: int) -> float:
        """Delay before the next try after `attempts` failures: doubling, capped, half-jittered."""
        base: float = min(self.max_backoff, self.initial_backoff * 2.0 ** min(attempts - 1, 32))
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 (jitter)


class Forwarder:
    """`concurrency` workers moving events from `store` to the MFO server through `client`."""

    def __init__(
        self,
        store: EventStore,
        client: AsyncMFOClient,
        settings: ForwarderSettings | None = None,
        *,
        owner: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.client = client
        self.settings = settings or ForwarderSettings()
        self.owner = owner or f"forwarder-{uuid.uuid4().hex[:12]}"
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.delivered = 0
        self.dead_lettered = 0

    def notify(self) -> None:
        """A new event was accepted: wake idle workers. Safe to call from the event loop only."""
        self._wakeup.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(n), name=f"{self.owner}-{n}")
            for n in range(self.settings.concurrency)
        ]

    async def stop(self, grace: float = 10.0) -> None:
        """Let in-flight sends finish for up to `grace` seconds, then cancel the rest.

        A cancelled send hands its lease back at once; should that fail too, the next start
        releases it, and the idempotency key keeps a resend from being applied twice.
        """
        self._stopping.set()
        self._wakeup.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _work(self, n: int) -> None:
        while not self._stopping.is_set():
            breaker = self.client.breaker
            try:
                breaker_wait = breaker.wait_time()
                if breaker_wait > 0:
                    await self._sleep(breaker_wait)
                    continue
                self._wakeup.clear()  # before looking, so a notify() meanwhile is not lost
                leases = await self._lease()
                if not leases:
                    await self._idle()
                    continue
                await self._deliver(leases[0])
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup must not kill the worker
                _log.exception("forwarder worker %d failed; continuing in 1s", n)
                await self._sleep(1.0)

    async def _lease(self) -> list[Lease]:
        """Lease one event; if stopped meanwhile, hand back what the store had already leased."""
        call = asyncio.ensure_future(
            self.store.lease(self.owner, 1, self.settings.lease_time, kinds=_KINDS)
        )
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            for lease in await call:
                await self.store.release(lease)
            raise

    async def _idle(self) -> None:
        due = await self.store.next_due_in(kinds=_KINDS)
        idle = self.store.idle_poll
        wait = idle if due is None else min(max(due, 0.0), idle)
        if wait > 0:
            await self._sleep(wait, wake_on_new=True)

    async def _sleep(self, seconds: float, *, wake_on_new: bool = False) -> None:
        waiters = [asyncio.ensure_future(self._stopping.wait())]
        if wake_on_new:
            waiters.append(asyncio.ensure_future(self._wakeup.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _count(self, outcome: str, seconds: float | None = None) -> None:
        if self.metrics is not None:
            self.metrics.delivery(outcome, seconds)

    async def _deliver(self, lease: Lease) -> None:
        attempt = lease.attempts + 1
        started = time.perf_counter()
        try:
            # The lease id is authoritative: the store may have renamed a colliding id.
            event = Event.model_validate({**lease.event, "id": lease.id})
            await self.client.events.send_event(event, idempotency_key=lease.id)
        except asyncio.CancelledError:
            # Shutting down mid-send: hand the event back now rather than at the lease's end.
            await self.store.release(lease)
            raise
        except CircuitOpenError as exc:
            await self.store.release(lease, exc.retry_in)
            self._count("released")
            return
        except APIResponseValidationError as exc:
            _log.warning("event %s stored by the server, but its answer was odd: %s", lease.id, exc)
        except APIError as exc:
            if exc.status in DEAD_LETTER_STATUSES:
                await self._dead(lease, f"rejected by the MFO server: {exc}")
                return
            retry_after = getattr(exc, "retry_after", None)
            await self._failed(lease, attempt, str(exc), retry_after)
            return
        except APIConnectionError as exc:
            await self._failed(lease, attempt, str(exc))
            return
        except ValidationError as exc:  # the stored event no longer validates: nothing will fix it
            await self._dead(lease, f"invalid event: {exc}")
            return
        except Exception as exc:  # count it, so a poison event ends in the dead letters
            _log.exception("unexpected error forwarding event %s", lease.id)
            await self._failed(lease, attempt, f"{type(exc).__name__}: {exc}")
            return
        await self.store.complete(lease)
        self.delivered += 1
        self._count("delivered", time.perf_counter() - started)
        _log.info(
            "event forwarded: %s",
            lease.id,
            extra={"mfo": {"event_id": lease.id, "attempt": attempt, "source": lease.source}},
        )

    async def _failed(
        self, lease: Lease, attempt: int, error: str, retry_after: float | None = None
    ) -> None:
        if attempt >= self.settings.max_attempts:
            await self._dead(lease, f"gave up after {attempt} attempts: {error}")
            return
        delay = max(self.settings.redelivery_delay(attempt), retry_after or 0.0)
        await self.store.retry_later(lease, error, delay)
        self._count("retry")
        _log.warning(
            "event %s not forwarded (attempt %d): %s; next try in %.1fs",
            lease.id,
            attempt,
            error,
            delay,
            extra={"mfo": {"event_id": lease.id, "attempt": attempt}},
        )

    async def _dead(self, lease: Lease, error: str) -> None:
        await self.store.dead_letter(lease, error)
        self.dead_lettered += 1
        self._count("dead")
        _log.error(
            "event %s moved to the dead-letter queue: %s",
            lease.id,
            error,
            extra={"mfo": {"event_id": lease.id, "source": lease.source}},
        )
