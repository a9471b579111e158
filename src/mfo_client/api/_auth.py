"""Authentication: providers say which header to send and how to log in; one flow drives them.

The flow (apply header, log in when there is none, on a 401 refresh once and resend) is written
once as a generator of steps, as httpx's `Auth.auth_flow` is, and serves the sync and async
clients alike. The only difference between the two, the kind of lock that makes a refresh
single-flight when many requests race, is a step the generator yields and each driver honours.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Protocol, runtime_checkable

import httpx
from pydantic import ValidationError

from mfo_client.api._errors import (
    APIResponseValidationError,
    AuthenticationError,
    error_from_response,
)
from mfo_client.api.models import LoginRequest, RefreshRequest, TokenResponse

__all__ = ["AuthFlow", "AuthProvider", "PasswordLoginAuth", "StaticTokenAuth"]

LoginSteps = Generator[httpx.Request, httpx.Response, None]


@runtime_checkable
class AuthProvider(Protocol):
    """Where the Authorization header comes from."""

    def auth_header(self) -> str | None:
        """The Authorization value to send now, or None when a login must come first."""
        ...

    def login_flow(self) -> LoginSteps:
        """Obtain a fresh credential: yield the requests to send, receive their responses."""
        ...

    def invalidate(self, header: str) -> bool:
        """Forget `header` after the server refused it; True if a login can get a new one."""
        ...


class StaticTokenAuth:
    """A fixed bearer token from configuration or the environment; nothing to refresh."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("StaticTokenAuth needs a non-empty token")
        self._header = f"Bearer {token}"

    def auth_header(self) -> str | None:
        return self._header

    def login_flow(self) -> LoginSteps:
        return
        yield  # pragma: no cover  (makes this a generator that sends nothing)

    def invalidate(self, header: str) -> bool:
        return False

    def __repr__(self) -> str:
        return "StaticTokenAuth(token='***')"


class PasswordLoginAuth:
    """Logs in at `{auth_base_url}/login` and keeps the token until shortly before it expires.

    A refresh token, when the server gives one, is tried first at `{auth_base_url}/refresh`; a
    refused refresh falls back to a full login.
    """

    def __init__(
        self,
        auth_base_url: str,
        username: str,
        password: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.auth_base_url = auth_base_url.rstrip("/")
        self.username = username
        self._password = password
        self._clock = clock
        self._access: str | None = None
        self._refresh: str | None = None
        self._valid_until = 0.0
        self.logins = 0
        """How many token requests (login or refresh) this provider has made."""

    def auth_header(self) -> str | None:
        if self._access is None or self._clock() >= self._valid_until:
            return None
        return f"Bearer {self._access}"

    def invalidate(self, header: str) -> bool:
        if header == f"Bearer {self._access}":
            self._access = None
        return True

    def login_flow(self) -> LoginSteps:
        if self._refresh is not None:
            body = RefreshRequest(refresh_token=self._refresh).model_dump()
            response = yield httpx.Request("POST", f"{self.auth_base_url}/refresh", json=body)
            self.logins += 1
            if response.status_code == 200:
                self._accept(response)
                return
            self._refresh = None
        body = LoginRequest(username=self.username, password=self._password).model_dump()
        response = yield httpx.Request("POST", f"{self.auth_base_url}/login", json=body)
        self.logins += 1
        if response.status_code != 200:
            raise error_from_response(response)
        self._accept(response)

    def _accept(self, response: httpx.Response) -> None:
        try:
            token = TokenResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise APIResponseValidationError(
                f"login answer is not a token response: {exc.errors()[0]['msg']}",
                status=response.status_code,
                body=None,  # it may hold tokens: keep it out of tracebacks and reports
                method=response.request.method,
                url=str(response.request.url),
            ) from None
        # Renew a little early so a request never leaves with a token about to lapse.
        leeway = min(30.0, token.expires_in * 0.1)
        self._access = token.access_token
        self._refresh = token.refresh_token
        self._valid_until = self._clock() + token.expires_in - leeway

    def __repr__(self) -> str:
        return f"PasswordLoginAuth({self.auth_base_url!r}, username={self.username!r})"


class _LockStep:
    def __init__(self, name: str) -> None:
        self.name = name


_ACQUIRE = _LockStep("acquire")
_RELEASE = _LockStep("release")
_Step = httpx.Request | _LockStep


class AuthFlow(httpx.Auth):
    """Adapts an AuthProvider to httpx for both the sync and the async client."""

    requires_response_body = True

    def __init__(self, provider: AuthProvider) -> None:
        self.provider = provider
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    def _steps(self, request: httpx.Request) -> Generator[_Step, httpx.Response | None, None]:
        provider = self.provider
        header = provider.auth_header()
        if header is None:
            yield _ACQUIRE
            header = provider.auth_header()  # another request may have logged in meanwhile
            if header is None:
                yield from _as_steps(provider.login_flow())
                header = provider.auth_header()
            yield _RELEASE
        if header is None:
            raise AuthenticationError(
                "no credentials: the auth provider produced no Authorization header",
                status=401,
                code="no_credentials",
            )
        request.headers["Authorization"] = header
        response = yield request
        if response is None or response.status_code != 401:
            return
        yield _ACQUIRE
        fresh = provider.auth_header()
        if fresh is None or fresh == header:
            if not provider.invalidate(header):
                yield _RELEASE
                return
            yield from _as_steps(provider.login_flow())
            fresh = provider.auth_header()
        yield _RELEASE
        if fresh is None:
            return
        request.headers["Authorization"] = fresh
        yield request

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        held = False
        steps = self._steps(request)
        try:
            step = next(steps)
            while True:
                if step is _ACQUIRE:
                    self._thread_lock.acquire()
                    held = True
                    step = steps.send(None)
                elif step is _RELEASE:
                    self._thread_lock.release()
                    held = False
                    step = steps.send(None)
                else:
                    assert isinstance(step, httpx.Request)
                    response = yield step
                    response.read()
                    step = steps.send(response)
        except StopIteration:
            return
        finally:
            if held:
                self._thread_lock.release()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        lock = self._async_lock
        held = False
        steps = self._steps(request)
        try:
            step = next(steps)
            while True:
                if step is _ACQUIRE:
                    await lock.acquire()
                    held = True
                    step = steps.send(None)
                elif step is _RELEASE:
                    lock.release()
                    held = False
                    step = steps.send(None)
                else:
                    assert isinstance(step, httpx.Request)
                    response = yield step
                    await response.aread()
                    step = steps.send(response)
        except StopIteration:
            return
        finally:
            if held:
                lock.release()


def _as_steps(login: LoginSteps) -> Generator[_Step, httpx.Response | None, None]:
    """Run a provider's login generator inside the flow's step protocol."""
    try:
        request = next(login)
        while True:
            response = yield request
            assert response is not None
            request = login.send(response)
    except StopIteration:
        return
