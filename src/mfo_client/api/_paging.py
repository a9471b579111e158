"""Query parameters shared by the list endpoints, and safe path segments."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["list_params", "quote_id"]


def list_params(
    limit: int | None, cursor: str | None, **filters: str | None
) -> dict[str, str | int]:
    params: dict[str, str | int] = {k: v for k, v in filters.items() if v is not None}
    if limit is not None:
        params["limit"] = limit
    if cursor is not None:
        params["cursor"] = cursor
    return params


def quote_id(value: str) -> str:
    """One path segment: an id containing '/' or '?' must not change the route."""
    return quote(value, safe="")
