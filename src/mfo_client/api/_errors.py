"""Every error the API client raises; callers never see a bare httpx exception.

    MFOError
    ├── APIError                     the server answered with an error status
    │   ├── BadRequestError          400
    │   ├── AuthenticationError      401
    │   ├── PermissionDeniedError    403
    │   ├── NotFoundError            404
    │   ├── ConflictError            409
    │   ├── UnprocessableEntityError 422
    │   ├── RateLimitError           429
    │   ├── ServerError              5xx
    │   └── APIResponseValidationError  2xx whose body is not what the contract says
    ├── APIConnectionError           no usable answer: refused, reset, DNS, TLS
    │   └── APITimeoutError          the request timed out
    ├── CircuitOpenError             the breaker for this server is open; nothing was sent
    └── JobWaitTimeoutError          a job was not final when `jobs.wait` gave up

Transport failures are kept apart from status errors because callers treat them differently: a
status error carries what the server said, a transport error only what went wrong on the way.
"""

from __future__ import annotations

from typing import Any

import httpx

from mfo_client.api.models import Job

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CircuitOpenError",
    "ConflictError",
    "JobWaitTimeoutError",
    "MFOError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "UnprocessableEntityError",
    "error_from_response",
    "status_error_class",
]


class MFOError(Exception):
    """Base of every error raised by the MFO client."""


class APIError(MFOError):
    """The server answered with a status the call cannot succeed with."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.body = body
        self.method = method
        self.url = url
        where = f" ({method} {url})" if method and url else ""
        rid = f" [request id {request_id}]" if request_id else ""
        super().__init__(f"{status} {code or 'error'}: {message}{where}{rid}")


class BadRequestError(APIError):
    pass


class AuthenticationError(APIError):
    pass


class PermissionDeniedError(APIError):
    pass


class NotFoundError(APIError):
    pass


class ConflictError(APIError):
    pass


class UnprocessableEntityError(APIError):
    pass


class RateLimitError(APIError):
    """429. `retry_after` is the server's Retry-After in seconds, when it sent one."""

    retry_after: float | None = None


class ServerError(APIError):
    """5xx. `retry_after` is set when the server sent Retry-After (typically with 503)."""

    retry_after: float | None = None


class APIResponseValidationError(APIError):
    """A success status whose body does not match the contract."""


class APIConnectionError(MFOError):
    """The request did not get an HTTP answer."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        self.message = message
        self.method = method
        self.url = url
        where = f" ({method} {url})" if method and url else ""
        super().__init__(f"{message}{where}")


class APITimeoutError(APIConnectionError):
    pass


class CircuitOpenError(MFOError):
    """Calls to `base_url` are refused locally until `retry_in` seconds have passed."""

    def __init__(self, base_url: str, retry_in: float) -> None:
        self.base_url = base_url
        self.retry_in = retry_in
        super().__init__(
            f"circuit breaker for {base_url} is open after repeated failures; "
            f"next probe in {retry_in:.1f}s"
        )


class JobWaitTimeoutError(MFOError):
    """`job` is the last state seen; the job itself goes on running on the server."""

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(f"job {job.id} still {job.status.value} after waiting {timeout:g}s")


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIError]:
    """The error class for an HTTP status: the one place that mapping lives."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)


def error_from_response(response: httpx.Response, retry_after: float | None = None) -> APIError:
    """Build the typed error for a non-success response, reading the `{"error": ...}` body."""
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = response.text
    code: str | None = None
    message = response.reason_phrase or "error"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        message = str(body["error"].get("message") or message)
    elif isinstance(body, str) and body.strip():
        message = body.strip()[:500]
    cls = status_error_class(response.status_code)
    error = cls(
        message,
        status=response.status_code,
        code=code,
        request_id=response.headers.get("x-request-id"),
        body=body,
        method=response.request.method,
        url=str(response.request.url),
    )
    if isinstance(error, RateLimitError | ServerError):
        error.retry_after = retry_after
    return error
