"""`http_get_task`'s run settings (`allow_hosts`, `connect_to`) against a real local server.

Names under `.test` are never real: a fake `socket.getaddrinfo` records every lookup and fails
those names, so a test can tell whether a name was looked up at all. HTTPS through `connect_to`
(SNI and the certificate check) is covered with the seed pipeline, in `test_seed_flows.py`.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from mfo_client.flows import FlowClients, FlowContext, TaskError, TaskInfo
from mfo_client.flows.tasks import TaskConfigError, UnsafeURLError, builtin_registry
from tests._servers import run_app


async def _headers(request: Request) -> Response:
    return JSONResponse(dict(request.headers))


async def _redirect(request: Request) -> Response:
    return RedirectResponse(request.query_params["to"], status_code=302)


APP = Starlette(routes=[Route("/headers", _headers), Route("/redirect", _redirect)])


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with run_app(APP) as url:
        yield url


@pytest.fixture
def port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name looked up; `.test` names do not resolve, others go to the real resolver."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        seen.append(name)
        if name.endswith(".test"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return seen


class Recorder:
    """A transport that records what reaches it and answers 599: refused URLs must not."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(599)


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, httpx.AsyncClient]]:
    record = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        yield record, client


async def fetch(
    config: dict[str, Any], settings: Any, http: httpx.AsyncClient | None = None
) -> dict[str, Any]:
    info = TaskInfo(id="fetch", name="fetch", type="http_get_task", attempt=1)
    clients = FlowClients(http=http, settings={"http_get_task": settings})
    outputs: dict[str, Any] = await builtin_registry().get("http_get_task")(config)(
        FlowContext({}, info, clients)
    )
    return outputs


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (["127.0.0.1"], "must be a mapping of keys, got a list"),
        (
            {"allow": ["127.0.0.1"]},
            'allow: unknown key (did you mean "allow_hosts"?); '
            "allowed keys: allow_hosts, connect_to",
        ),
        (
            {"allow_hosts": ["http://10.0.0.1/"]},
            'allow_hosts[0]: not a host name, IP address or CIDR network: "http://10.0.0.1/"',
        ),
        ({"connect_to": ["a.test:443"]}, "connect_to: must be a mapping of keys, got a list"),
        (
            {"connect_to": {"a.test": "127.0.0.1:8443"}},
            'connect_to: not a "host:port" with a port from 1 to 65535: "a.test" '
            '(write "api.example.com:443", "10.0.0.5:8443" or "[::1]:8443")',
        ),
        (
            {"connect_to": {"a.test:443": "::1:8443"}},
            'connect_to: "a.test:443": not a "host:port" with a port from 1 to 65535: "::1:8443"',
        ),
        (
            {"connect_to": {"a.test:443": "127.0.0.1:0"}},
            'connect_to: "a.test:443": not a "host:port" with a port from 1 to 65535',
        ),
        (
            {"connect_to": {"a.test:443": 8443}},
            'connect_to: "a.test:443": must be a "host:port" string, got 8443',
        ),
        (
            {"connect_to": {"a.test:443": "127.0.0.1:1", "A.Test.:443": "127.0.0.1:2"}},
            'connect_to: "A.Test.:443" is the same host and port as an earlier key',
        ),
    ],
)
async def test_invalid_settings_fail_the_task_before_any_request(
    settings: Any, problem: str, recorder: tuple[Recorder, httpx.AsyncClient]
) -> None:
    record, client = recorder
    with pytest.raises(TaskConfigError) as info:
        await fetch({"url": "https://a.test/"}, settings, client)
    assert str(info.value).startswith(f"invalid config for http_get_task settings: {problem}")
    assert record.requests == []


# --- allow_hosts ------------------------------------------------------------------------------


async def test_allow_hosts_of_the_settings_add_to_the_tasks_own(base: str) -> None:
    url = f"{base}/headers"
    assert (await fetch({"url": url}, {"allow_hosts": ["127.0.0.0/8"]}))["status"] == 200
    both = await fetch({"url": url, "allow_hosts": ["10.0.0.0/8"]}, {"allow_hosts": ["127.0.0.1"]})
    assert both["status"] == 200
    with pytest.raises(UnsafeURLError, match=r"127\.0\.0\.1 is a loopback address"):
        await fetch({"url": url, "allow_hosts": ["10.0.0.0/8"]}, {"allow_hosts": []})


# --- connect_to -------------------------------------------------------------------------------


async def test_connect_to_sends_the_request_elsewhere_under_the_urls_name(
    port: int, lookups: list[str]
) -> None:
    settings = {"allow_hosts": ["127.0.0.1"], "connect_to": {"svc.test:80": f"127.0.0.1:{port}"}}
    outputs = await fetch({"url": "http://svc.test/headers"}, settings)
    assert outputs["body"]["host"] == "svc.test"
    assert outputs["url"] == "http://svc.test/headers"
    assert lookups == []  # neither the URL's name nor the target address was looked up


@pytest.mark.parametrize(
    ("url", "key", "host"),
    [
        ("http://svc.test:8080/headers", "SVC.test.:8080", "svc.test:8080"),
        ("https://svc.test/headers", "svc.test:80", None),  # https: port 443
        ("http://127.0.0.1:1/headers", "127.0.0.1:1", "127.0.0.1:1"),
        ("http://[::1]:1/headers", "[::1]:1", "[::1]:1"),
    ],
)
async def test_connect_to_matches_the_host_and_the_port(
    url: str, key: str, host: str | None, port: int, lookups: list[str]
) -> None:
    settings = {"allow_hosts": ["127.0.0.1", "::1"], "connect_to": {key: f"127.0.0.1:{port}"}}
    if host is None:
        with pytest.raises(TaskError, match=r'host "svc\.test" does not resolve'):
            await fetch({"url": url}, settings)
    else:
        assert (await fetch({"url": url}, settings))["body"]["host"] == host


async def test_a_port_not_in_connect_to_goes_where_its_url_says(lookups: list[str]) -> None:
    settings = {"allow_hosts": ["127.0.0.1"], "connect_to": {"svc.test:443": "127.0.0.1:1"}}
    with pytest.raises(TaskError) as info:
        await fetch({"url": "http://svc.test/x"}, settings)
    assert info.value.message == (
        'cannot fetch "http://svc.test/x": host "svc.test" does not resolve '
        "(Name or service not known)"
    )
    assert lookups == ["svc.test"]


async def test_the_target_of_connect_to_is_what_the_guard_checks(
    recorder: tuple[Recorder, httpx.AsyncClient],
) -> None:
    record, client = recorder
    to_private = {"connect_to": {"svc.test:443": "10.0.0.1:8443"}}
    with pytest.raises(UnsafeURLError) as info:
        await fetch({"url": "https://svc.test/x"}, to_private, client)
    assert info.value.message == (
        'refusing to fetch "https://svc.test/x" through 10.0.0.1:8443 (its connect_to): '
        '10.0.0.1 is a private address; to allow it, add "10.0.0.1" to allow_hosts'
    )
    assert info.value.details["connect_to"] == "10.0.0.1:8443"
    # Allowing the URL's name does not allow the address it is sent to instead.
    with pytest.raises(UnsafeURLError, match=r"10\.0\.0\.1 is a private address"):
        await fetch({"url": "https://svc.test/x", "allow_hosts": ["svc.test"]}, to_private, client)
    assert record.requests == []


async def test_a_target_named_is_resolved_and_checked_as_that_name(
    port: int, lookups: list[str], recorder: tuple[Recorder, httpx.AsyncClient]
) -> None:
    to_localhost = {"connect_to": {"svc.test:80": f"localhost:{port}"}}
    with pytest.raises(UnsafeURLError, match=r'host "localhost" resolves to .*a loopback address'):
        await fetch({"url": "http://svc.test/headers"}, to_localhost, recorder[1])
    assert recorder[0].requests == []
    outputs = await fetch(
        {"url": "http://svc.test/headers"}, {**to_localhost, "allow_hosts": ["localhost"]}
    )
    assert outputs["body"]["host"] == "svc.test"
    assert "svc.test" not in lookups


async def test_connect_to_applies_on_every_redirect_hop(base: str, port: int) -> None:
    settings = {"allow_hosts": ["127.0.0.1"], "connect_to": {"svc.test:80": f"127.0.0.1:{port}"}}
    url = f"{base}/redirect?to=" + quote("http://svc.test/headers", safe="")
    outputs = await fetch({"url": url, "follow_redirects": True}, settings)
    assert outputs["body"]["host"] == "svc.test"
    assert outputs["url"] == "http://svc.test/headers"
