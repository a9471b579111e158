"""`http_get_task` against a real local server, and its SSRF guard.

Refusals are checked with a client whose transport records every request: a refused URL must
not reach it. Names other than `localhost` resolve through a fake `socket.getaddrinfo`, so no
lookup leaves the machine; the only requests sent go to loopback.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from mfo_client.flows._context import FlowClients, FlowContext, TaskInfo
from mfo_client.flows._errors import TaskError
from mfo_client.flows.tasks import TaskConfigError, UnsafeURLError, builtin_registry
from tests._servers import free_port, run_app

# --- the server -------------------------------------------------------------------------------


async def _json(request: Request) -> Response:
    return JSONResponse({"items": [1, 2]})


async def _text(request: Request) -> Response:
    return PlainTextResponse("héllo")


async def _latin1(request: Request) -> Response:
    return Response("café".encode("latin-1"), media_type="text/plain; charset=iso-8859-1")


async def _problem(request: Request) -> Response:
    return Response('{"title": "x"}', media_type="application/problem+json")


async def _not_json(request: Request) -> Response:
    return Response("oops", media_type="application/json")


async def _headers(request: Request) -> Response:
    return JSONResponse(dict(request.headers))


async def _status(request: Request) -> Response:
    return PlainTextResponse("nope", status_code=int(request.path_params["code"]))


async def _redirect(request: Request) -> Response:
    return RedirectResponse(request.query_params["to"], status_code=302)


async def _loop(request: Request) -> Response:
    return RedirectResponse("/loop", status_code=307)


async def _big(request: Request) -> Response:
    return Response(b"x" * 1000, media_type="application/octet-stream")


async def _big_stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 100

    return StreamingResponse(chunks(), media_type="text/plain")


async def _slow(request: Request) -> Response:
    await asyncio.sleep(1)
    return PlainTextResponse("late")


APP = Starlette(
    routes=[
        Route("/json", _json),
        Route("/text", _text),
        Route("/latin1", _latin1),
        Route("/problem", _problem),
        Route("/not-json", _not_json),
        Route("/headers", _headers),
        Route("/status/{code:int}", _status),
        Route("/redirect", _redirect),
        Route("/loop", _loop),
        Route("/big", _big),
        Route("/big-stream", _big_stream),
        Route("/slow", _slow),
    ]
)


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with run_app(APP) as url:
        yield url


@pytest.fixture
def port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


# --- helpers ----------------------------------------------------------------------------------


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


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Names to fake: name -> list of addresses, or a callable returning one per lookup.

    Unknown `.test` names do not resolve; other names go to the real resolver (only
    `localhost` and IP literals are looked up in these tests).
    """
    names: dict[str, Any] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in names:
            entry = names[name]
            addresses = entry() if callable(entry) else entry
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (a, port or 0, 0, 0) if ":" in a else (a, port or 0),
                )
                for a in addresses
            ]
        if isinstance(name, str) and name.endswith(".test"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def make_ctx(http: httpx.AsyncClient | None = None) -> FlowContext:
    info = TaskInfo(
        id="fetch", name="fetch", type="http_get_task", attempt=1, flow="f", run_id="r1"
    )
    return FlowContext({}, info, FlowClients(http=http))


async def fetch(config: dict[str, Any], http: httpx.AsyncClient | None = None) -> Any:
    result = builtin_registry().get("http_get_task")(config)(make_ctx(http))
    return await result if inspect.isawaitable(result) else result


LOOPBACK = ["127.0.0.1"]


# --- fetching ---------------------------------------------------------------------------------


async def test_json_is_parsed_and_every_output_is_set(base: str) -> None:
    outputs = await fetch({"url": f"{base}/json", "allow_hosts": LOOPBACK, "timeout": "10s"})
    assert outputs["status"] == 200
    assert outputs["headers"]["content-type"] == "application/json"
    assert outputs["body"] == {"items": [1, 2]}
    assert outputs["url"] == f"{base}/json"
    assert set(outputs) == {"status", "headers", "body", "url"}


@pytest.mark.parametrize(
    ("path", "output", "body"),
    [
        ("/text", "auto", "héllo"),
        ("/latin1", "auto", "café"),
        ("/problem", "auto", {"title": "x"}),
        ("/json", "text", '{"items":[1,2]}'),
        ("/text", "text", "héllo"),
        ("/problem", "json", {"title": "x"}),
    ],
)
async def test_output_decides_how_the_body_is_read(
    base: str, path: str, output: str, body: Any
) -> None:
    outputs = await fetch({"url": base + path, "output": output, "allow_hosts": LOOPBACK})
    assert outputs["body"] == body


async def test_a_body_that_is_not_the_json_it_claims_fails_the_task(base: str) -> None:
    with pytest.raises(TaskError, match=r"is not valid JSON .*; set output: \"text\""):
        await fetch({"url": f"{base}/not-json", "allow_hosts": LOOPBACK})
    with pytest.raises(TaskError, match=r"is not valid JSON"):
        await fetch({"url": f"{base}/text", "output": "json", "allow_hosts": LOOPBACK})


async def test_headers_are_sent(base: str) -> None:
    config = {"url": f"{base}/headers", "headers": {"X-Trace": "t-1"}, "allow_hosts": LOOPBACK}
    assert (await fetch(config))["body"]["x-trace"] == "t-1"


async def test_a_given_client_is_used_and_its_redirect_setting_ignored(base: str) -> None:
    async with httpx.AsyncClient(follow_redirects=True) as client:
        outputs = await fetch({"url": f"{base}/json", "allow_hosts": LOOPBACK}, client)
        assert outputs["body"] == {"items": [1, 2]}
        with pytest.raises(TaskError, match="returned HTTP 302 Found"):
            url = f"{base}/redirect?to=/json"
            await fetch({"url": url, "allow_hosts": LOOPBACK}, client)


async def test_a_given_clients_headers_cookies_and_auth_stay_with_it(base: str) -> None:
    async with httpx.AsyncClient(
        headers={"X-Api-Key": "k-1"}, cookies={"session": "c-1"}, auth=("user", "pw")
    ) as client:
        outputs = await fetch({"url": f"{base}/headers", "allow_hosts": LOOPBACK}, client)
    sent = outputs["body"]
    assert not {"x-api-key", "cookie", "authorization"} & set(sent)
    assert sent["user-agent"].startswith("mfo-client/")


async def test_a_non_2xx_status_fails_the_task_with_the_status(base: str) -> None:
    with pytest.raises(TaskError) as info:
        await fetch({"url": f"{base}/status/404", "allow_hosts": LOOPBACK})
    assert info.value.message == f"GET {base}/status/404 returned HTTP 404 Not Found"
    assert (info.value.details["status"], info.value.details["body"]) == (404, "nope")


async def test_redirects_are_not_followed_by_default(base: str) -> None:
    with pytest.raises(TaskError) as info:
        await fetch({"url": f"{base}/redirect?to=/json", "allow_hosts": LOOPBACK})
    assert info.value.message == (
        f"GET {base}/redirect?to=/json returned HTTP 302 Found, a redirect to /json; "
        "set follow_redirects: true to follow it"
    )


async def test_redirects_are_followed_when_asked(base: str) -> None:
    config = {"url": f"{base}/redirect?to=/json", "follow_redirects": True, "allow_hosts": LOOPBACK}
    outputs = await fetch(config)
    assert (outputs["body"], outputs["url"]) == ({"items": [1, 2]}, f"{base}/json")


async def test_too_many_redirects_fail_the_task(base: str) -> None:
    config = {
        "url": f"{base}/loop",
        "follow_redirects": True,
        "max_redirects": 2,
        "allow_hosts": LOOPBACK,
    }
    with pytest.raises(TaskError) as info:
        await fetch(config)
    assert info.value.message == (
        f"GET {base}/loop: more than 2 redirects (the last to {base}/loop); "
        "raise max_redirects to follow more"
    )


async def test_credentials_are_kept_on_the_same_origin_and_dropped_off_it(
    base: str, port: int
) -> None:
    allow = ["127.0.0.1", "localhost"]
    headers = {"Authorization": "Bearer s3cret", "X-Api-Key": "k-1", "Accept": "application/json"}
    same = f"{base}/redirect?to=/headers"
    outputs = await fetch(
        {"url": same, "headers": headers, "follow_redirects": True, "allow_hosts": allow}
    )
    assert outputs["body"]["authorization"] == "Bearer s3cret"
    other = f"{base}/redirect?to=" + quote(f"http://localhost:{port}/headers", safe="")
    outputs = await fetch(
        {"url": other, "headers": headers, "follow_redirects": True, "allow_hosts": allow}
    )
    assert "authorization" not in outputs["body"]
    assert "x-api-key" not in outputs["body"]  # any custom header may carry a key
    assert outputs["body"]["accept"] == "application/json"
    assert outputs["body"]["host"] == f"localhost:{port}"
    assert outputs["url"] == f"http://localhost:{port}/headers"


@pytest.mark.parametrize(
    ("path", "why"), [("/big", "it declares 1000 bytes"), ("/big-stream", "it is larger")]
)
async def test_a_body_over_max_bytes_fails_the_task(base: str, path: str, why: str) -> None:
    with pytest.raises(TaskError) as info:
        await fetch({"url": base + path, "max_bytes": 100, "allow_hosts": LOOPBACK})
    assert info.value.message == (
        f"the response of GET {base}{path} exceeds max_bytes (100 bytes): {why}; "
        "raise max_bytes to accept it"
    )


async def test_the_timeout_bounds_the_whole_fetch(base: str) -> None:
    with pytest.raises(TaskError) as info:
        await fetch({"url": f"{base}/slow", "timeout": "100ms", "allow_hosts": LOOPBACK})
    assert info.value.message == f"GET {base}/slow timed out after 100ms"


async def test_a_refused_connection_fails_the_task_cleanly() -> None:
    url = f"http://127.0.0.1:{free_port()}/"  # a port nobody listens on
    with pytest.raises(TaskError, match=rf"^GET {url} failed: "):
        await fetch({"url": url, "allow_hosts": LOOPBACK})


# --- the SSRF guard ---------------------------------------------------------------------------


async def refused(
    url: str, recorder: tuple[Recorder, httpx.AsyncClient], **config: Any
) -> UnsafeURLError:
    record, client = recorder
    with pytest.raises(UnsafeURLError) as info:
        await fetch({"url": url, **config}, client)
    assert record.requests == []
    return info.value


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://127.0.0.1:8080/admin",
            '127.0.0.1 is a loopback address; to allow it, add "127.0.0.1" to allow_hosts',
        ),
        ("http://[::1]:8080/", '::1 is a loopback address; to allow it, add "::1" to allow_hosts'),
        (
            "http://10.0.0.1/internal",
            '10.0.0.1 is a private address; to allow it, add "10.0.0.1" to allow_hosts',
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a link-local address; "
            'to allow it, add "169.254.169.254" to allow_hosts',
        ),
        (
            "http://100.100.100.200/latest/meta-data/",
            "100.100.100.200 is a non-public (not globally routable) address; "
            'to allow it, add "100.100.100.200" to allow_hosts',
        ),
        ("http://0.0.0.0:8080/", '0.0.0.0 is an unspecified address; to allow it, add "0.0.0.0"'),
        ("http://224.0.0.1/", '224.0.0.1 is a multicast address; to allow it, add "224.0.0.1"'),
    ],
)
async def test_non_public_addresses_are_refused_before_any_request(
    url: str, message: str, recorder: tuple[Recorder, httpx.AsyncClient]
) -> None:
    error = await refused(url, recorder)
    assert error.message.startswith(f'refusing to fetch "{url}": {message}')


async def test_a_name_resolving_to_loopback_is_refused(
    recorder: tuple[Recorder, httpx.AsyncClient],
) -> None:
    error = await refused("http://localhost:8080/", recorder)
    assert error.message in {
        'refusing to fetch "http://localhost:8080/": host "localhost" resolves to '
        f'{address}, a loopback address; to allow it, add "localhost" (or "{address}") '
        "to allow_hosts"
        for address in ("127.0.0.1", "::1")
    }


async def test_every_address_of_a_name_is_checked(
    recorder: tuple[Recorder, httpx.AsyncClient], fake_dns: dict[str, Any]
) -> None:
    fake_dns["internal.test"] = ["127.0.0.1"]
    fake_dns["mixed.test"] = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "10.1.2.3"]
    error = await refused("https://internal.test/", recorder)
    assert error.message == (
        'refusing to fetch "https://internal.test/": host "internal.test" resolves to '
        '127.0.0.1, a loopback address; to allow it, add "internal.test" (or "127.0.0.1") '
        "to allow_hosts"
    )
    error = await refused("https://mixed.test/", recorder)
    assert "resolves to 10.1.2.3, a private address" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # 127.0.0.1 as one number
        "http://0x7f.1/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",  # 169.254.169.254, mapped into IPv6
        "http://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[fec0::1]/",  # site-local: some Python releases call it global
        "http://100.64.0.1/",  # shared address space (carrier-grade NAT, cloud metadata)
        "http://198.18.0.1/",  # benchmarking
    ],
)
async def test_disguised_addresses_are_refused(
    url: str, recorder: tuple[Recorder, httpx.AsyncClient]
) -> None:
    await refused(url, recorder)


async def test_other_schemes_are_refused(recorder: tuple[Recorder, httpx.AsyncClient]) -> None:
    with pytest.raises(TaskConfigError) as info:
        builtin_registry().get("http_get_task")({"url": "file:///etc/passwd"})
    assert str(info.value) == (
        "invalid config for http_get_task: "
        'url: must be an http or https URL with a host, got "file:///etc/passwd"'
    )
    with pytest.raises(TaskConfigError, match="must be an http or https URL"):
        await fetch({"url": "gopher://127.0.0.1:70/"})


async def test_redirects_are_checked_hop_by_hop(base: str) -> None:
    config = {"follow_redirects": True, "allow_hosts": LOOPBACK}
    to_metadata = f"{base}/redirect?to=" + quote("http://169.254.169.254/latest/", safe="")
    with pytest.raises(UnsafeURLError) as info:
        await fetch({"url": to_metadata, **config})
    assert info.value.message.startswith(
        'refusing to fetch "http://169.254.169.254/latest/": 169.254.169.254 is a link-local'
    )
    to_file = f"{base}/redirect?to=" + quote("file:///etc/passwd", safe="")
    with pytest.raises(UnsafeURLError) as info:
        await fetch({"url": to_file, **config})
    # httpx writes the joined URL as `file:/etc/passwd`.
    assert info.value.message == (
        'refusing to fetch "file:/etc/passwd": only http and https URLs are allowed, not "file"'
    )


async def test_allow_hosts_takes_names_addresses_and_networks(
    base: str, port: int, fake_dns: dict[str, Any]
) -> None:
    fake_dns["api.internal.test"] = ["127.0.0.1"]
    for allow in (["127.0.0.0/8"], ["api.internal.test"], ["*.internal.test"]):
        url = f"http://api.internal.test:{port}/json"
        outputs = await fetch({"url": url, "allow_hosts": allow})
        assert outputs["body"] == {"items": [1, 2]}
    outputs = await fetch({"url": f"http://localhost:{port}/json", "allow_hosts": ["localhost"]})
    assert outputs["status"] == 200


async def test_the_request_goes_to_the_vetted_address_without_a_second_lookup(
    base: str, port: int, fake_dns: dict[str, Any]
) -> None:
    lookups: list[str] = []

    def rebinding() -> list[str]:
        # The first answer passes the check; a rebinding attacker's second never comes.
        lookups.append("rebind.test")
        if len(lookups) > 1:
            raise socket.gaierror(socket.EAI_NONAME, "looked up twice")
        return ["127.0.0.1"]

    fake_dns["rebind.test"] = rebinding
    url = f"http://rebind.test:{port}/headers"
    outputs = await fetch({"url": url, "allow_hosts": LOOPBACK})
    assert lookups == ["rebind.test"]
    assert outputs["body"]["host"] == f"rebind.test:{port}"
    assert outputs["url"] == url


async def test_an_unresolvable_host_fails_the_task(fake_dns: dict[str, Any]) -> None:
    with pytest.raises(TaskError) as info:
        await fetch({"url": "https://nowhere.test/x"})
    assert info.value.message == (
        'cannot fetch "https://nowhere.test/x": host "nowhere.test" does not resolve '
        "(Name or service not known)"
    )


async def test_a_password_in_the_url_is_not_repeated_in_messages(
    recorder: tuple[Recorder, httpx.AsyncClient],
) -> None:
    error = await refused("http://user:s3cret@10.0.0.1/", recorder)
    assert "s3cret" not in str(error)
    assert error.message.startswith('refusing to fetch "http://10.0.0.1/"')
