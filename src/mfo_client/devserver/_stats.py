"""Request counts per route template and status, so tests can assert what a client sent."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mfo_client.devserver._routing import is_admin, route_template

__all__ = ["Stats", "StatsMiddleware"]


class Stats:
    def __init__(self) -> None:
        self._counts: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )

    def record(self, template: str, status: int) -> None:
        self._counts[template][str(status)] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {template: dict(statuses) for template, statuses in sorted(self._counts.items())}

    def reset(self) -> None:
        self._counts.clear()


class StatsMiddleware:
    """Count every answered request except the `/_admin/*` ones (they would count themselves)."""

    def __init__(self, app: ASGIApp, *, stats: Stats, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.stats = stats
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_admin(scope):
            await self.app(scope, receive, send)
            return
        template = route_template(scope, self.routes)

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stats.record(template, int(message["status"]))
            await send(message)

        await self.app(scope, receive, counting_send)
