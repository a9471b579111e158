"""`/_admin/*`: development-only controls (faults, stats, token expiry); no auth, never faulted.

These routes exist on the dev server only; a production MFO server has nothing like them.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mfo_client.devserver._auth import Authenticator
from mfo_client.devserver._errors import ApiError
from mfo_client.devserver._faults import FaultState
from mfo_client.devserver._http import parse_body, route
from mfo_client.devserver._stats import Stats
from mfo_client.devserver.settings import FaultSpec

__all__ = ["admin_routes"]


def _json(data: object) -> Response:
    return Response(json.dumps(data), media_type="application/json")


def admin_routes(faults: FaultState, stats: Stats, authenticator: Authenticator) -> list[Route]:
    def fault_view() -> Response:
        current = faults.current
        return _json({"fault": None if current is None else current.model_dump()})

    async def get_faults(request: Request) -> Response:
        return fault_view()

    async def set_faults(request: Request) -> Response:
        spec = await parse_body(request, FaultSpec)
        try:
            faults.set(spec)
        except ValueError as exc:
            raise ApiError(422, "validation_error", f"body.routes: {exc}") from None
        return fault_view()

    async def clear_faults(request: Request) -> Response:
        faults.clear()
        return fault_view()

    async def get_stats(request: Request) -> Response:
        return _json({"requests": stats.snapshot()})

    async def reset_stats(request: Request) -> Response:
        stats.reset()
        return _json({"requests": {}})

    async def expire_tokens(request: Request) -> Response:
        return _json({"expired": authenticator.expire_all()})

    return [
        route("/_admin/faults", {"GET": get_faults, "POST": set_faults, "DELETE": clear_faults}),
        route("/_admin/stats", {"GET": get_stats, "DELETE": reset_stats}),
        route("/_admin/tokens/expire", {"POST": expire_tokens}),
    ]
