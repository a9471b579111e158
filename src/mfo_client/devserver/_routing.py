"""Which route template a request is for (`GET /api/jobs/{id}`), before the router runs.

Faults and stats act outside the router, so they match the routes themselves; the answer is
cached in the scope so it is computed once per request.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

__all__ = ["ADMIN_PREFIX", "UNMATCHED", "is_admin", "route_template", "templates"]

ADMIN_PREFIX = "/_admin/"
UNMATCHED = "<unmatched>"
_CACHE_KEY = "mfo.route_template"


def is_admin(scope: Scope) -> bool:
    return str(scope["path"]).startswith(ADMIN_PREFIX)


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """`"METHOD /template"`, or `"METHOD <unmatched>"` when no route has that path."""
    cached = scope.get(_CACHE_KEY)
    if isinstance(cached, str):
        return cached
    method = scope["method"]
    found = f"{method} {UNMATCHED}"
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match is not Match.NONE and isinstance(candidate, Route):
            found = f"{method} {candidate.path}"
            if match is Match.FULL:
                break
    scope[_CACHE_KEY] = found
    return found


def templates(routes: Sequence[BaseRoute]) -> list[str]:
    """Every `"METHOD /template"` the app serves (HEAD left out)."""
    return sorted(
        f"{method} {candidate.path}"
        for candidate in routes
        if isinstance(candidate, Route)
        for method in candidate.methods or ()
        if method != "HEAD"
    )
