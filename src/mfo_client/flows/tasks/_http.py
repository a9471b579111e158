"""`http_get_task`: fetch a URL, guarded against SSRF (see `_ssrf`), with a size cap.

Outputs: `status`, `headers` (lower-case names; repeated headers joined by ", "), `body` (parsed
JSON or text, per `output`) and `url` (the final URL, after any followed redirects). A non-2xx
response, including an unfollowed redirect, fails the task with its status. `timeout` bounds
the whole fetch: resolving, connecting, every redirect hop and reading the body.

The caller's `ctx.clients.http` is used when given: its transport, proxies, limits and event
hooks apply, but not its default headers, cookies or auth, which are meant for other hosts than
one an event chose. Otherwise a client is made for the one fetch, ignoring proxy environment
variables, since the request goes to the vetted address itself.

Settings: the operator (never a flow file or event data) may give a mapping as
`settings["http_get_task"]` of the run's `FlowClients`, for every such task of the run; invalid
settings fail the task with a `TaskConfigError` naming the key:

- `allow_hosts`: entries as in a task's `allow_hosts`, added to every task's own.
- `connect_to`: `"host:port" -> "host:port"`, like curl's `--connect-to`. A request for the
  first host and port (the scheme's default port when the URL has none) is sent to the second
  instead, on every redirect hop too, while its `Host` header, TLS SNI and certificate check
  still use the URL's name. The URL's own host is then never looked up, and the SSRF guard
  checks the host actually connected to, so a private or loopback target must be allowed as
  well (`"api.example.com:443": "127.0.0.1:8443"` with `127.0.0.1` in `allow_hosts`).
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any, Literal

import httpx
from pydantic import AfterValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from mfo_client.config import Duration, format_duration
from mfo_client.config._messages import show
from mfo_client.flows._context import FlowContext
from mfo_client.flows._errors import TaskError
from mfo_client.flows._registry import TaskCallable
from mfo_client.flows.tasks._common import NO_TEMPLATE, TaskConfig, is_templated, validate
from mfo_client.flows.tasks._ssrf import (
    SCHEMES,
    HostPolicy,
    Target,
    check_allow_entry,
    endpoint,
    host_port,
    shown_url,
    vet,
)

__all__ = ["HttpGetConfig", "HttpGetSettings", "build_http_get"]

TEN_MEBIBYTES = 10 * 1024 * 1024
_ERROR_BODY_CHARS = 500
_KEPT_OFF_ORIGIN = frozenset(
    {"accept", "accept-encoding", "accept-language", "cache-control", "user-agent"}
)
"""The configured headers a redirect to another origin keeps; any other one may be a key."""


def _allow_entry(entry: str) -> str:
    # The allow-list is security policy: it comes from the flow's author or the operator,
    # never from event data through a template.
    if is_templated(entry):
        raise PydanticCustomError(
            NO_TEMPLATE, "allow_hosts entries cannot be templates, got {got}", {"got": repr(entry)}
        )
    return check_allow_entry(entry)


class HttpGetConfig(TaskConfig):
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = timedelta(seconds=30)
    output: Literal["auto", "json", "text"] = "auto"
    """`auto`: JSON when the response's content type is JSON (`application/json`, `+json`)."""
    allow_hosts: list[Annotated[str, AfterValidator(_allow_entry)]] = Field(default_factory=list)
    """Host names (`*.corp.example` for subdomains), IPs or CIDRs allowed though not public."""
    follow_redirects: bool = False
    max_redirects: int = Field(default=5, ge=0, le=30)
    max_bytes: int = Field(default=TEN_MEBIBYTES, ge=1)
    """The largest (decoded) body accepted; a larger one fails the task."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if is_templated(value):
            return value
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in SCHEMES or not url.host:
            raise ValueError(f'must be an http or https URL with a host, got "{value}"')
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be more than 0s, got {format_duration(value)}")
        return value


def _host_port(value: Any) -> tuple[str, int]:
    if not isinstance(value, str):
        raise ValueError(f'must be a "host:port" string, got {show(value)}')
    return host_port(value)


class HttpGetSettings(TaskConfig):
    """The operator's settings for every `http_get_task` of a run (see the module docstring)."""

    allow_hosts: list[Annotated[str, AfterValidator(check_allow_entry)]] = Field(
        default_factory=list
    )
    """Added to each task's own `allow_hosts`."""
    connect_to: dict[tuple[str, int], tuple[str, int]] = Field(default_factory=dict)
    """`(host, port)` of a URL -> `(host, port)` its requests are sent to (given as strings)."""

    @field_validator("connect_to", mode="before")
    @classmethod
    def _endpoints(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value  # pydantic says it must be a mapping
        parsed: dict[tuple[str, int], tuple[str, int]] = {}
        for key, to in value.items():
            source = _host_port(key)
            if source in parsed:
                raise ValueError(f'"{key}" is the same host and port as an earlier key')
            try:
                parsed[source] = _host_port(to)
            except ValueError as exc:
                raise ValueError(f'"{key}": {exc}') from None
        return parsed

    @classmethod
    def of(cls, ctx: FlowContext) -> HttpGetSettings:
        """The run's settings (`ctx.clients.settings["http_get_task"]`), validated."""
        raw = ctx.clients.settings.get("http_get_task")
        return _NO_SETTINGS if raw is None else validate(cls, raw, "http_get_task settings")


_NO_SETTINGS = HttpGetSettings()


def build_http_get(cfg: HttpGetConfig) -> TaskCallable:
    own_policy = HostPolicy.from_entries(cfg.allow_hosts)

    async def run(ctx: FlowContext) -> dict[str, Any]:
        settings = HttpGetSettings.of(ctx)
        policy = own_policy
        if settings.allow_hosts:
            policy = HostPolicy.from_entries([*cfg.allow_hosts, *settings.allow_hosts])
        shown = shown_url(cfg.url)
        try:
            url = httpx.URL(cfg.url)
            async with asyncio.timeout(cfg.timeout.total_seconds()):
                if ctx.clients.http is not None:
                    return await _fetch(ctx.clients.http, cfg, settings, policy, url)
                async with httpx.AsyncClient(trust_env=False) as client:
                    return await _fetch(client, cfg, settings, policy, url)
        except (TimeoutError, httpx.TimeoutException):
            raise TaskError(
                f"GET {shown} timed out after {format_duration(cfg.timeout)}", url=shown
            ) from None
        except httpx.InvalidURL as exc:
            raise TaskError(f"GET {shown}: not a valid URL ({exc})", url=shown) from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise TaskError(f"GET {shown} failed: {reason}", url=shown) from exc

    return run


async def _fetch(
    client: httpx.AsyncClient,
    cfg: HttpGetConfig,
    settings: HttpGetSettings,
    policy: HostPolicy,
    url: httpx.URL,
) -> dict[str, Any]:
    headers = dict(cfg.headers)
    for hop in range(cfg.max_redirects + 1):
        target = await vet(url, policy, _via(url, settings))
        async with _send(client, target, headers, cfg.timeout.total_seconds()) as response:
            location = response.headers.get("location")
            if response.is_redirect and cfg.follow_redirects and location:
                next_url = url.join(location)
                if hop == cfg.max_redirects:
                    raise TaskError(
                        f"GET {shown_url(cfg.url)}: more than {cfg.max_redirects} redirects "
                        f"(the last to {shown_url(next_url)}); raise max_redirects to follow more",
                        url=shown_url(url),
                    )
                if _origin(next_url) != _origin(url):
                    headers = {k: v for k, v in headers.items() if k.lower() in _KEPT_OFF_ORIGIN}
                url = next_url
                continue
            if not response.is_success:
                raise await _status_error(response, url, location)
            content = await _read(response, url, cfg.max_bytes)
            return {
                "status": response.status_code,
                "headers": dict(response.headers.items()),
                "body": _decode(response, content, cfg.output, url),
                "url": shown_url(url),
            }
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def _via(url: httpx.URL, settings: HttpGetSettings) -> httpx.URL | None:
    """`url` sent where `connect_to` says, if it names the URL's host and port."""
    to = settings.connect_to.get(endpoint(url)) if settings.connect_to else None
    return None if to is None else url.copy_with(host=to[0], port=to[1])


@asynccontextmanager
async def _send(
    client: httpx.AsyncClient, target: Target, headers: dict[str, str], timeout: float
) -> AsyncIterator[httpx.Response]:
    """The streamed response from the first vetted address that accepts a connection."""
    destinations = target.destinations()
    for index, send_to in enumerate(destinations):
        request = _request(target.url, send_to, headers, timeout)
        try:
            response = await client.send(request, stream=True, follow_redirects=False, auth=None)
            break
        except httpx.ConnectError:
            if index == len(destinations) - 1:
                raise
    try:
        yield response
    finally:
        await response.aclose()


def _request(
    url: httpx.URL, send_to: httpx.URL, headers: dict[str, str], timeout: float
) -> httpx.Request:
    """A GET of `url` sent to `send_to` (the same URL, or another host and port: a vetted
    address, or where `connect_to` says).

    Built here rather than by the client, and sent with `auth=None`: a shared client's default
    headers, cookies and auth are meant for the hosts it was set up for, never for a URL an
    event chose. Credentials in the URL itself still apply.
    """
    wanted = httpx.Headers({"Accept": "*/*", "Accept-Encoding": "gzip, deflate"})
    wanted["User-Agent"] = _user_agent()
    wanted.update(headers)
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout).as_dict()}
    if send_to.netloc != url.netloc:
        if "host" not in wanted:
            wanted["Host"] = url.netloc.decode("ascii")
        if url.scheme == "https":
            extensions["sni_hostname"] = url.raw_host.decode("ascii")
            wanted["Connection"] = "close"  # see `_ssrf`: no connection reuse across names
    return httpx.Request("GET", send_to, headers=wanted, extensions=extensions)


@functools.cache
def _user_agent() -> str:
    from mfo_client import __version__

    return f"mfo-client/{__version__} (flows; httpx/{httpx.__version__})"


async def _status_error(
    response: httpx.Response, url: httpx.URL, location: str | None
) -> TaskError:
    status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    if response.is_redirect:
        return TaskError(
            f"GET {shown_url(url)} returned {status}, a redirect to {location}; "
            "set follow_redirects: true to follow it",
            status=response.status_code,
            url=shown_url(url),
            location=location,
        )
    snippet = (await _read(response, url, _ERROR_BODY_CHARS, truncate=True)).decode(
        "utf-8", errors="replace"
    )
    return TaskError(
        f"GET {shown_url(url)} returned {status}",
        status=response.status_code,
        url=shown_url(url),
        body=snippet,
    )


async def _read(
    response: httpx.Response, url: httpx.URL, limit: int, *, truncate: bool = False
) -> bytes:
    """The body, at most `limit` bytes: cut there if `truncate`, else a TaskError beyond it."""
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > limit:
        raise _too_large(url, limit, f"it declares {declared} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if truncate:
                break
            raise _too_large(url, limit, "it is larger")
    return b"".join(chunks)[:limit]


def _too_large(url: httpx.URL, limit: int, why: str) -> TaskError:
    return TaskError(
        f"the response of GET {shown_url(url)} exceeds max_bytes ({limit} bytes): {why}; "
        "raise max_bytes to accept it",
        url=shown_url(url),
        max_bytes=limit,
    )


def _decode(response: httpx.Response, content: bytes, output: str, url: httpx.URL) -> Any:
    if output == "auto":
        mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
        output = "json" if mime == "application/json" or mime.endswith("+json") else "text"
    if output == "json":
        if not content.strip():
            return None
        try:
            return json.loads(content)
        except ValueError as exc:
            raise TaskError(
                f"the response of GET {shown_url(url)} is not valid JSON ({exc}); "
                'set output: "text" to keep it as text',
                url=shown_url(url),
            ) from None
    return content.decode(_encoding(response), errors="replace")


def _encoding(response: httpx.Response) -> str:
    charset = response.charset_encoding
    if charset:
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host, url.port
