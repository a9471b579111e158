"""The request core shared by the sync and async clients.

Everything that does no I/O lives here once: building the request, the retry loop, the circuit
breaker, error mapping and response parsing. A call is a *program*, a generator that yields
`Send(request)` and `Sleep(seconds)` steps and returns the parsed result; the sync and async
clients are thin drivers that perform those two steps with their own I/O (the sans-I/O style).
Polling loops such as `jobs.wait` are programs too, composed with `yield from`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from mfo_client.api._auth import AuthFlow, AuthProvider
from mfo_client.api._breaker import CircuitBreakerRegistry, default_breakers
from mfo_client.api._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    error_from_response,
)
from mfo_client.api._hooks import AttemptDetails, ClientHook, LoggingHook
from mfo_client.api._policies import (
    CircuitBreakerPolicy,
    RetryPolicy,
    is_testing,
    parse_retry_after,
    retry_delay,
)

__all__ = [
    "USER_AGENT",
    "AsyncCaller",
    "CoreClient",
    "Operation",
    "Program",
    "Send",
    "Sleep",
    "SyncCaller",
    "resume",
]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_log = logging.getLogger("mfo_client.api")


def _user_agent() -> str:
    from mfo_client import __version__

    return f"mfo-client/{__version__} (python; httpx/{httpx.__version__})"


USER_AGENT = _user_agent()


@dataclass(frozen=True, slots=True)
class Send:
    request: httpx.Request
    auth: bool = True
    """False for the login requests themselves, which carry credentials in their body."""


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float
    backoff: bool = True
    """Backoff waits are skipped under `set_testing(True)`; polling intervals are not."""

    @property
    def wait(self) -> float:
        """Seconds the driver should actually sleep."""
        return 0.0 if self.backoff and is_testing() else self.seconds


Outcome = httpx.Response | httpx.HTTPError
Program = Generator[Send | Sleep, Outcome | None, T]


@dataclass(frozen=True, slots=True)
class Operation(Generic[M]):
    """One API call: what to send and which model the answer is."""

    method: str
    path: str
    cast_to: type[M]
    json: Any = None
    params: Mapping[str, str | int] | None = None
    idempotency_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class CoreClient:
    """State and logic shared by `MFOClient` and `AsyncMFOClient`; holds no HTTP connection."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthProvider | None,
        retry: RetryPolicy,
        circuit_breaker: CircuitBreakerPolicy,
        breakers: CircuitBreakerRegistry | None,
        hooks: Sequence[ClientHook] | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.retry = retry
        self.breaker = (breakers or default_breakers).get(self.base_url, circuit_breaker)
        self.hooks: list[ClientHook] = [LoggingHook()] if hooks is None else list(hooks)
        self._auth_flow = AuthFlow(auth) if auth is not None else None

    @staticmethod
    def http_options(base_url: str, timeout: float | httpx.Timeout) -> dict[str, Any]:
        return {
            "base_url": base_url.rstrip("/") + "/",
            "timeout": timeout,
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
            "follow_redirects": False,
        }

    def build_request(
        self, http: httpx.Client | httpx.AsyncClient, op: Operation[M]
    ) -> httpx.Request:
        headers = dict(op.headers)
        if op.method == "POST":
            # One key for every attempt of this call, so a retried POST is applied once.
            headers["Idempotency-Key"] = op.idempotency_key or str(uuid.uuid4())
        return http.build_request(
            op.method, op.path.lstrip("/"), json=op.json, params=op.params, headers=headers
        )

    def login(self) -> Program[None]:
        """The auth provider's login steps as a program, so both drivers can run it and its
        failures come out as typed errors like any other call's."""
        if self.auth is None:
            return
        steps = self.auth.login_flow()
        try:
            request = next(steps)
            while True:
                outcome = yield Send(request, auth=False)
                if not isinstance(outcome, httpx.Response):
                    assert outcome is not None
                    raise self._error(request, outcome, None)
                request = steps.send(outcome)
        except StopIteration:
            return

    def call(self, request: httpx.Request, cast_to: type[M]) -> Program[M]:
        """The retry loop around one request, with the breaker consulted before each attempt."""
        attempt = 0
        while True:
            attempt += 1
            probe = self.breaker.before_call()
            started = time.perf_counter()
            try:
                outcome = yield Send(request)
            except BaseException:
                self.breaker.release(probe)
                raise
            assert outcome is not None
            elapsed = time.perf_counter() - started
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                self.breaker.record_success()
                self._report(request, attempt, elapsed, outcome, None)
                return self._parse(outcome, cast_to)
            retry_after = None
            if isinstance(outcome, httpx.Response):
                retry_after = parse_retry_after(outcome.headers.get("retry-after"))
                if outcome.status_code >= 500:
                    self.breaker.record_failure()
                else:
                    self.breaker.record_success()  # the server is up; the request was refused
            else:
                self.breaker.record_failure()
            delay = retry_delay(self.retry, attempt, outcome, retry_after)
            self._report(request, attempt, elapsed, outcome, delay)
            if delay is None:
                raise self._error(request, outcome, retry_after)
            yield Sleep(delay)

    def _report(
        self,
        request: httpx.Request,
        attempt: int,
        elapsed: float,
        outcome: Outcome,
        retry_in: float | None,
    ) -> None:
        if not self.hooks:
            return
        is_response = isinstance(outcome, httpx.Response)
        details = AttemptDetails(
            method=request.method,
            url=str(request.url),
            attempt=attempt,
            idempotency_key=request.headers.get("idempotency-key"),
            elapsed=elapsed,
            status=outcome.status_code if isinstance(outcome, httpx.Response) else None,
            error=None if is_response else type(outcome).__name__,
            retry_in=retry_in,
        )
        for hook in self.hooks:
            try:
                hook(details)
            except Exception:  # a broken hook must never break a request
                _log.exception("client hook %r failed", hook)

    @staticmethod
    def _error(
        request: httpx.Request, outcome: Outcome, retry_after: float | None
    ) -> APIError | APIConnectionError:
        if isinstance(outcome, httpx.Response):
            return error_from_response(outcome, retry_after)
        where = {"method": request.method, "url": str(request.url)}
        if isinstance(outcome, httpx.TimeoutException):
            return APITimeoutError(f"request timed out ({type(outcome).__name__})", **where)
        detail = str(outcome) or type(outcome).__name__
        if not isinstance(outcome, httpx.TransportError):  # e.g. a body that cannot be decoded
            return APIConnectionError(f"unusable answer from the MFO server: {detail}", **where)
        return APIConnectionError(f"could not reach the MFO server: {detail}", **where)

    @staticmethod
    def _parse(response: httpx.Response, cast_to: type[M]) -> M:
        try:
            return cast_to.model_validate_json(response.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise APIResponseValidationError(
                f"unexpected response body for {cast_to.__name__}: {where}: {first['msg']}",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
                body=response.text[:2000],
                method=response.request.method,
                url=str(response.request.url),
            ) from None


def resume(program: Program[T], value: Outcome | None) -> tuple[bool, Any]:
    """Send `value` into `program`: (False, its next step), or (True, its result) once done."""
    try:
        return False, program.send(value)
    except StopIteration as stop:
        return True, stop.value


class SyncCaller(Protocol):
    """What a sync resource needs from its client."""

    def _request(self, op: Operation[M]) -> M: ...

    def _run(self, program: Program[T]) -> T: ...

    def _program(self, op: Operation[M]) -> Program[M]: ...


class AsyncCaller(Protocol):
    """What an async resource needs from its client."""

    async def _request(self, op: Operation[M]) -> M: ...

    async def _run(self, program: Program[T]) -> T: ...

    def _program(self, op: Operation[M]) -> Program[M]: ...
