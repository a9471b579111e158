"""Static tokens and the login flow: caching, expiry, refresh on 401, single-flight refresh."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mfo_client import (
    APIConnectionError,
    AsyncMFOClient,
    AuthenticationError,
    MFOClient,
    PasswordLoginAuth,
)
from mfo_client.api import CircuitBreakerRegistry
from tests._servers import free_port
from tests.api.conftest import PASSWORD, USER, Server, start


def _login(server: Server, password: str = PASSWORD) -> PasswordLoginAuth:
    return PasswordLoginAuth(server.auth, USER, password)


def test_login_once_and_reuse_the_token(server: Server, breakers: CircuitBreakerRegistry) -> None:
    auth = _login(server)
    with MFOClient(server.api, auth=auth, breakers=breakers) as mfo:
        for i in range(5):
            mfo.events.send_event({"type": "t", "payload": i})
    assert auth.logins == 1
    assert server.count("POST /auth/login", 200) == 1
    assert server.count("POST /api/events", 401) == 0


def test_explicit_login_before_the_first_request(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    auth = _login(server)
    with MFOClient(server.api, auth=auth, breakers=breakers) as mfo:
        mfo.login()
        assert auth.auth_header() is not None
        mfo.resources.list()
    assert auth.logins == 1


def test_revoked_token_is_refreshed_once_and_the_request_resent(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    auth = _login(server)
    with MFOClient(server.api, auth=auth, breakers=breakers) as mfo:
        mfo.resources.create("doc", "before")
        server.expire_tokens()
        after = mfo.resources.create("doc", "after")
        assert mfo.resources.get(after.id).content == "after"
    assert server.count("POST /api/resources", 401) == 1
    assert server.count("POST /api/resources", 201) == 2
    assert auth.logins == 2


async def test_racing_requests_share_one_refresh(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    auth = _login(server)
    async with AsyncMFOClient(server.api, auth=auth, breakers=breakers) as mfo:
        await mfo.resources.list()
        server.expire_tokens()
        await asyncio.gather(*(mfo.resources.list() for _ in range(20)))
    assert auth.logins == 2  # the first login and one refresh, however many requests saw 401
    assert server.count("GET /api/resources", 200) == 21


def test_racing_threads_share_one_login(server: Server, breakers: CircuitBreakerRegistry) -> None:
    auth = _login(server)
    with MFOClient(server.api, auth=auth, breakers=breakers) as mfo:
        with ThreadPoolExecutor(8) as pool:
            pages = list(pool.map(lambda _: mfo.resources.list(), range(16)))
    assert len(pages) == 16
    assert auth.logins == 1


def test_token_is_renewed_shortly_before_it_expires(breakers: CircuitBreakerRegistry) -> None:
    with start(token_ttl=1) as url:
        server = Server(url)
        auth = _login(server)
        with MFOClient(server.api, auth=auth, breakers=breakers) as mfo:
            mfo.resources.list()
            time.sleep(0.95)  # inside the renewal margin (10% of the lifetime)
            mfo.resources.list()
        assert auth.logins == 2
        assert server.count("GET /api/resources", 401) == 0
        server.admin.close()


def test_wrong_password_is_an_authentication_error(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    with MFOClient(server.api, auth=_login(server, "nope"), breakers=breakers) as mfo:
        with pytest.raises(AuthenticationError) as info:
            mfo.resources.list()
    assert info.value.status == 401
    assert info.value.url == f"{server.auth}/login"
    assert server.count("GET /api/resources") == 0


def test_secrets_stay_out_of_reprs(server: Server) -> None:
    client = MFOClient(server.api, auth="s3cr3t-token")
    assert "s3cr3t" not in repr(client)
    assert PASSWORD not in repr(_login(server))
    client.close()


def test_login_failures_are_typed_errors_too(breakers: CircuitBreakerRegistry) -> None:
    port = free_port()
    auth = PasswordLoginAuth(f"http://127.0.0.1:{port}/auth", USER, PASSWORD)
    with MFOClient(f"http://127.0.0.1:{port}/api", auth=auth, breakers=breakers) as mfo:
        with pytest.raises(APIConnectionError) as info:
            mfo.login()
    assert info.value.url == f"http://127.0.0.1:{port}/auth/login"


async def test_login_is_a_no_op_for_static_tokens(server: Server) -> None:
    async with AsyncMFOClient(server.api, auth="test-token") as mfo:
        await mfo.login()
    assert server.count("POST /auth/login") == 0
