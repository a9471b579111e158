"""mfo-client: the edge agent of the MFO (MindFlight Orchestrator) platform.

The names here are the supported public API; everything else may change between releases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from mfo_client.api import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    AsyncMFOClient,
    AttemptDetails,
    AuthenticationError,
    AuthProvider,
    BadRequestError,
    ChatMessage,
    CircuitBreakerPolicy,
    CircuitOpenError,
    ConflictError,
    Event,
    EventReceipt,
    Job,
    JobStatus,
    JobWaitTimeoutError,
    MFOClient,
    MFOError,
    NotFoundError,
    Notification,
    Page,
    PasswordLoginAuth,
    PermissionDeniedError,
    RateLimitError,
    Resource,
    RetryPolicy,
    ServerError,
    StaticTokenAuth,
    StoredEvent,
    UnprocessableEntityError,
)
from mfo_client.config import Config, load_config

if TYPE_CHECKING:
    from starlette.applications import Starlette


def create_app(config: Config, *, workers: bool = True) -> Starlette:
    """`mfo serve` as an ASGI app for a server of your own (imported on first use, so that
    `import mfo_client` stays light for scripts that only use the API client)."""
    from mfo_client.service import create_app as _create_app

    return _create_app(config, workers=workers)


__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APITimeoutError",
    "AsyncMFOClient",
    "AttemptDetails",
    "AuthProvider",
    "AuthenticationError",
    "BadRequestError",
    "ChatMessage",
    "CircuitBreakerPolicy",
    "CircuitOpenError",
    "Config",
    "ConflictError",
    "Event",
    "EventReceipt",
    "Job",
    "JobStatus",
    "JobWaitTimeoutError",
    "MFOClient",
    "MFOError",
    "NotFoundError",
    "Notification",
    "Page",
    "PasswordLoginAuth",
    "PermissionDeniedError",
    "RateLimitError",
    "Resource",
    "RetryPolicy",
    "ServerError",
    "StaticTokenAuth",
    "StoredEvent",
    "UnprocessableEntityError",
    "__version__",
    "create_app",
    "load_config",
]
