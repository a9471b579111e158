"""Small request/response helpers shared by the route modules."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mfo_client.devserver._errors import ApiError
from mfo_client.devserver._store import Store

__all__ = [
    "PAGING",
    "ListQuery",
    "describe_validation_error",
    "encode_cursor",
    "json_response",
    "list_query",
    "page_response",
    "parse_body",
    "path_id",
    "route",
    "single_query_value",
    "stored_or_404",
]

M = TypeVar("M", bound=BaseModel)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
PAGING = ("limit", "cursor")
_INTEGER = re.compile(r"-?[0-9]{1,12}")
_CURSOR_PREFIX = "seq:"


def describe_validation_error(exc: ValidationError, *, where: str = "body") -> str:
    """One line naming every offending field, e.g. `body.type: Field required`."""
    parts = []
    for error in exc.errors(include_url=False):
        location = ".".join([where, *(str(part) for part in error["loc"])])
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


async def parse_body(request: Request, model: type[M]) -> M:
    """Validate the JSON body strictly: 400 if it is not JSON, 422 if it does not fit `model`.

    Strict mode keeps the server as exact as the contract: no numbers where strings belong,
    no Unix times where an RFC 3339 date-time belongs.
    """
    raw = await request.body()
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise ApiError(
                400, "bad_request", "the request body must be a JSON object; it is not JSON"
            ) from None
        raise ApiError(422, "validation_error", describe_validation_error(exc)) from None


def json_response(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def single_query_value(request: Request, name: str, *, error_status: int = 422) -> str | None:
    """A query parameter that may be given at most once."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        code = "validation_error" if error_status == 422 else "bad_request"
        raise ApiError(error_status, code, f"query.{name}: give this parameter at most once")
    return values[0] if values else None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    invalid = ApiError(
        400, "bad_request", "query.cursor: not a cursor this server issued; pass next_cursor back"
    )
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid from None
    number = text.removeprefix(_CURSOR_PREFIX)
    if text == number or not number.isascii() or not number.isdigit() or len(number) > 18:
        raise invalid
    return int(number)


@dataclass(frozen=True, slots=True)
class ListQuery:
    limit: int
    after: int


def list_query(request: Request) -> ListQuery:
    """`?limit=` (1..1000, default 100) and `?cursor=` of a list endpoint."""
    limit = DEFAULT_LIMIT
    raw_limit = single_query_value(request, "limit")
    if raw_limit is not None:
        if not _INTEGER.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise ApiError(
                422,
                "validation_error",
                f"query.limit: must be an integer from 1 to {MAX_LIMIT}, got {raw_limit!r}",
            )
        limit = int(raw_limit)
    raw_cursor = single_query_value(request, "cursor", error_status=400)
    after = 0 if raw_cursor is None else _decode_cursor(raw_cursor)
    return ListQuery(limit=limit, after=after)


def stored_or_404(store: Store, kind: str, record_id: str, noun: str) -> Response:
    """A stored record as it was rendered when created, or a 404 naming what was missing."""
    body = store.get(kind, record_id)
    if body is None:
        raise ApiError(404, "not_found", f"no {noun} with id {record_id!r}")
    return Response(body, media_type="application/json")


def page_response(rows: list[tuple[int, str]], has_more: bool) -> Response:
    """Render stored JSON bodies as a Page without re-parsing them."""
    next_cursor = f'"{encode_cursor(rows[-1][0])}"' if has_more and rows else "null"
    items = ",".join(body for _, body in rows)
    return Response(
        f'{{"items":[{items}],"next_cursor":{next_cursor}}}', media_type="application/json"
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def route(
    path: str,
    handlers: Mapping[str, Endpoint],
    *,
    query: Mapping[str, Collection[str]] | None = None,
) -> Route:
    """One route per path, so a wrong method gets a 405 whose `Allow` lists every method.

    `query` names the query parameters each method takes; any other is a 422, the way request
    bodies refuse unknown fields, so a misspelt `?limt=` fails loudly instead of being ignored.
    """
    allowed = {method: frozenset(names) for method, names in (query or {}).items()}

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        known = allowed.get(method, frozenset())
        unknown = sorted({name for name in request.query_params if name not in known})
        if unknown:
            takes = ", ".join(sorted(known)) or "none"
            raise ApiError(
                422,
                "validation_error",
                f"query: unknown parameter(s) {', '.join(map(repr, unknown))}; this takes {takes}",
            )
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers))


MAX_ID_LENGTH = 256


def path_id(request: Request, name: str) -> str:
    """A path segment used as an identifier: 1 to 256 characters."""
    value = str(request.path_params[name])
    if len(value) > MAX_ID_LENGTH:
        raise ApiError(422, "validation_error", f"path.{name}: at most {MAX_ID_LENGTH} characters")
    return value
