"""`AsyncMFOClient` (the core) and `MFOClient` (sync, for scripts): thin drivers of one core.

Both hold an httpx client and perform the two I/O steps of a `Program`; everything else
(requests, retries, breaker, errors, parsing) is `CoreClient`'s, written once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from mfo_client.api._auth import AuthProvider, PasswordLoginAuth, StaticTokenAuth
from mfo_client.api._breaker import CircuitBreaker, CircuitBreakerRegistry
from mfo_client.api._chat import AsyncChat, Chat
from mfo_client.api._core import CoreClient, Operation, Program, Send, resume
from mfo_client.api._events import AsyncEvents, Events
from mfo_client.api._hooks import ClientHook
from mfo_client.api._jobs import AsyncJobs, Jobs
from mfo_client.api._notifications import AsyncNotifications, Notifications
from mfo_client.api._policies import (
    DEFAULT_BREAKER,
    DEFAULT_RETRY,
    CircuitBreakerPolicy,
    RetryPolicy,
)
from mfo_client.api._resources import AsyncResources, Resources

if TYPE_CHECKING:
    from mfo_client.config import ClientConfig, Config

__all__ = ["AsyncMFOClient", "MFOClient", "client_options_from_config"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def client_options_from_config(cfg: Config | ClientConfig) -> dict[str, Any]:
    """Constructor arguments for either client from the `client` section of a configuration."""
    from mfo_client.config import Config

    client = cfg.client if isinstance(cfg, Config) else cfg
    auth: AuthProvider | None = None
    if client.auth_token is not None and client.auth_token.get_secret_value():
        auth = StaticTokenAuth(client.auth_token.get_secret_value())
    elif client.credentials is not None:
        auth = PasswordLoginAuth(
            client.resolved_auth_base_url,
            client.credentials.username,
            client.credentials.password.get_secret_value(),
        )
    return {
        "base_url": client.base_url,
        "auth": auth,
        "timeout": client.timeout.total_seconds(),
        "retry": RetryPolicy(
            max_attempts=client.retry.max_attempts,
            initial_backoff=client.retry.initial_backoff.total_seconds(),
            max_backoff=client.retry.max_backoff.total_seconds(),
            backoff_multiplier=client.retry.backoff_multiplier,
        ),
        "circuit_breaker": CircuitBreakerPolicy(
            failure_threshold=client.circuit_breaker.failure_threshold,
            reset_timeout=client.circuit_breaker.reset_timeout.total_seconds(),
        ),
    }


class _ClientBase:
    """Constructor and facade shared by both twins."""

    _core: CoreClient

    def _init_core(
        self,
        base_url: str,
        auth: AuthProvider | str | None,
        retry: RetryPolicy,
        circuit_breaker: CircuitBreakerPolicy,
        breakers: CircuitBreakerRegistry | None,
        hooks: Sequence[ClientHook] | None,
    ) -> None:
        provider = StaticTokenAuth(auth) if isinstance(auth, str) else auth
        self._core = CoreClient(
            base_url,
            auth=provider,
            retry=retry,
            circuit_breaker=circuit_breaker,
            breakers=breakers,
            hooks=hooks,
        )

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def auth(self) -> AuthProvider | None:
        return self._core.auth

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding this client's server (shared per registry and URL)."""
        return self._core.breaker

    @property
    def hooks(self) -> list[ClientHook]:
        """Attempt hooks; append to add instrumentation."""
        return self._core.hooks

    def _program(self, op: Operation[M]) -> Program[M]:
        return self._core.call(self._core.build_request(self._http_client(), op), op.cast_to)

    def _http_client(self) -> httpx.Client | httpx.AsyncClient:
        raise NotImplementedError

    def _auth_for(self, step: Send) -> Any:
        if not step.auth:
            return None
        flow = self._core._auth_flow
        return flow if flow is not None else httpx.USE_CLIENT_DEFAULT

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, auth={self.auth!r})"


class MFOClient(_ClientBase):
    """Synchronous client for scripts: `with MFOClient(url, auth="token") as mfo: ...`."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthProvider | str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        circuit_breaker: CircuitBreakerPolicy = DEFAULT_BREAKER,
        breakers: CircuitBreakerRegistry | None = None,
        hooks: Sequence[ClientHook] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._init_core(base_url, auth, retry, circuit_breaker, breakers, hooks)
        self._http = http_client or httpx.Client(**CoreClient.http_options(base_url, timeout))
        self.events = Events(self)
        self.chat = Chat(self)
        self.resources = Resources(self)
        self.jobs = Jobs(self)
        self.notifications = Notifications(self)

    @classmethod
    def from_config(cls, cfg: Config | ClientConfig, **overrides: Any) -> Self:
        """A client set up from the `client` section: URLs, auth, timeout, retry, breaker."""
        return cls(**{**client_options_from_config(cfg), **overrides})

    def _http_client(self) -> httpx.Client:
        return self._http

    def _run(self, program: Program[T]) -> T:
        finished, step = resume(program, None)
        while not finished:
            outcome: httpx.Response | httpx.HTTPError | None = None
            if isinstance(step, Send):
                try:
                    outcome = self._http.send(step.request, auth=self._auth_for(step))
                except httpx.HTTPError as exc:  # mapped to a typed error by the core
                    outcome = exc
                except BaseException as exc:
                    step = program.throw(exc)
                    continue
            elif step.wait > 0:
                time.sleep(step.wait)
            finished, step = resume(program, outcome)
        return step  # type: ignore[no-any-return]

    def _request(self, op: Operation[M]) -> M:
        return self._run(self._program(op))

    def login(self) -> None:
        """Log in now rather than on the first request (a no-op for static tokens)."""
        self._run(self._core.login())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncMFOClient(_ClientBase):
    """Asynchronous client: `async with AsyncMFOClient(url, auth="token") as mfo: ...`."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthProvider | str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        circuit_breaker: CircuitBreakerPolicy = DEFAULT_BREAKER,
        breakers: CircuitBreakerRegistry | None = None,
        hooks: Sequence[ClientHook] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._init_core(base_url, auth, retry, circuit_breaker, breakers, hooks)
        self._http = http_client or httpx.AsyncClient(**CoreClient.http_options(base_url, timeout))
        self.events = AsyncEvents(self)
        self.chat = AsyncChat(self)
        self.resources = AsyncResources(self)
        self.jobs = AsyncJobs(self)
        self.notifications = AsyncNotifications(self)

    @classmethod
    def from_config(cls, cfg: Config | ClientConfig, **overrides: Any) -> Self:
        """A client set up from the `client` section: URLs, auth, timeout, retry, breaker."""
        return cls(**{**client_options_from_config(cfg), **overrides})

    def _http_client(self) -> httpx.AsyncClient:
        return self._http

    async def _run(self, program: Program[T]) -> T:
        finished, step = resume(program, None)
        while not finished:
            outcome: httpx.Response | httpx.HTTPError | None = None
            if isinstance(step, Send):
                try:
                    outcome = await self._http.send(step.request, auth=self._auth_for(step))
                except httpx.HTTPError as exc:  # mapped to a typed error by the core
                    outcome = exc
                except BaseException as exc:
                    step = program.throw(exc)
                    continue
            elif step.wait > 0:
                await asyncio.sleep(step.wait)
            finished, step = resume(program, outcome)
        return step  # type: ignore[no-any-return]

    async def _request(self, op: Operation[M]) -> M:
        return await self._run(self._program(op))

    async def login(self) -> None:
        """Log in now rather than on the first request (a no-op for static tokens)."""
        await self._run(self._core.login())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
