"""Injected faults: failures and latency on chosen routes, to rehearse retries and breakers.

The active fault is plain data (`FaultSpec`) plus a countdown. It never touches `/_admin/*`, so a
test can always clear what it set.

An injected failure answers before the request is handled: nothing is stored, nothing is kept
for idempotent replay. Latency is added after the request was handled, while its response is
held back: the change has happened but the client does not know yet, which is the case a
client's timeout, retry and idempotency key exist for.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import anyio
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mfo_client.devserver._errors import ApiError, send_error
from mfo_client.devserver._routing import is_admin, route_template
from mfo_client.devserver.settings import FaultSpec

__all__ = ["FaultMiddleware", "FaultState"]


class FaultState:
    """The fault in force, if any, and how many more requests it applies to."""

    def __init__(self, known_templates: Sequence[str], *, rng: random.Random | None = None) -> None:
        self._known = frozenset(known_templates)
        self._rng = rng or random.SystemRandom()
        self._spec: FaultSpec | None = None
        self._remaining: int | None = None

    def check_routes(self, spec: FaultSpec) -> None:
        """Raise ValueError naming unknown route templates (and the valid ones)."""
        unknown = sorted(set(spec.routes or ()) - self._known)
        if unknown:
            raise ValueError(
                f"unknown route template(s) {unknown}; use 'METHOD /path' as one of:"
                f" {', '.join(sorted(self._known))}"
            )

    def set(self, spec: FaultSpec) -> None:
        self.check_routes(spec)
        self._spec = spec
        self._remaining = spec.count

    def clear(self) -> None:
        self._spec = None
        self._remaining = None

    @property
    def current(self) -> FaultSpec | None:
        """The active fault, with `count` showing how many requests it still applies to."""
        if self._spec is None:
            return None
        return self._spec.model_copy(update={"count": self._remaining})

    def claim(self, template: str) -> FaultSpec | None:
        """The fault for this request, counting it against `count`; None if none applies."""
        spec = self._spec
        if spec is None or (spec.routes is not None and template not in spec.routes):
            return None
        if self._remaining is not None:
            self._remaining -= 1
            if self._remaining <= 0:
                self.clear()
        return spec

    def should_fail(self, spec: FaultSpec) -> bool:
        rate = spec.effective_fail_rate
        return rate >= 1.0 or (rate > 0.0 and self._rng.random() < rate)


class FaultMiddleware:
    """Delay and/or fail matching requests as the active fault says."""

    def __init__(self, app: ASGIApp, *, state: FaultState, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_admin(scope):
            await self.app(scope, receive, send)
            return
        spec = self.state.claim(route_template(scope, self.routes))
        if spec is None:
            await self.app(scope, receive, send)
            return
        delay = spec.latency_ms / 1000
        if not self.state.should_fail(spec):
            await self._delayed(delay, scope, receive, send)
            return
        await anyio.sleep(delay)
        headers = {}
        if spec.retry_after is not None:
            headers["Retry-After"] = str(spec.retry_after)
        error = ApiError(
            spec.effective_status,
            "injected_fault",
            f"fault injected by the dev server (status {spec.effective_status})",
            headers,
        )
        await send_error(error, scope, receive, send)

    async def _delayed(self, delay: float, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle the request now, hold its response back for `delay` seconds."""
        if not delay:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        await anyio.sleep(delay)
        for message in held:
            await send(message)
