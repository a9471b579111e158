"""The typed MFO API client: auth, retries with backoff, a circuit breaker, typed errors.

Usable on its own as a library; it knows nothing of webhooks, stores, flows or the CLI.
"""

from __future__ import annotations

from mfo_client.api._auth import AuthFlow, AuthProvider, PasswordLoginAuth, StaticTokenAuth
from mfo_client.api._breaker import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerRegistry,
    default_breakers,
)
from mfo_client.api._chat import AsyncChat, Chat
from mfo_client.api._client import AsyncMFOClient, MFOClient, client_options_from_config
from mfo_client.api._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ConflictError,
    JobWaitTimeoutError,
    MFOError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
    status_error_class,
)
from mfo_client.api._events import AsyncEvents, Events
from mfo_client.api._hooks import AttemptDetails, ClientHook, LoggingHook
from mfo_client.api._jobs import AsyncJobs, Jobs
from mfo_client.api._notifications import AsyncNotifications, Notifications
from mfo_client.api._policies import (
    DEFAULT_BREAKER,
    DEFAULT_RETRY,
    RETRYABLE_STATUSES,
    CircuitBreakerPolicy,
    RetryPolicy,
    parse_retry_after,
    retry_delay,
    set_testing,
)
from mfo_client.api._resources import AsyncResources, Resources
from mfo_client.api.models import (
    ChatMessage,
    Event,
    EventReceipt,
    Job,
    JobStatus,
    Notification,
    Page,
    Resource,
    StoredEvent,
    TokenResponse,
)

__all__ = [
    "DEFAULT_BREAKER",
    "DEFAULT_RETRY",
    "RETRYABLE_STATUSES",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APITimeoutError",
    "AsyncChat",
    "AsyncEvents",
    "AsyncJobs",
    "AsyncMFOClient",
    "AsyncNotifications",
    "AsyncResources",
    "AttemptDetails",
    "AuthFlow",
    "AuthProvider",
    "AuthenticationError",
    "BadRequestError",
    "BreakerState",
    "Chat",
    "ChatMessage",
    "CircuitBreaker",
    "CircuitBreakerPolicy",
    "CircuitBreakerRegistry",
    "CircuitOpenError",
    "ClientHook",
    "ConflictError",
    "Event",
    "EventReceipt",
    "Events",
    "Job",
    "JobStatus",
    "JobWaitTimeoutError",
    "Jobs",
    "LoggingHook",
    "MFOClient",
    "MFOError",
    "NotFoundError",
    "Notification",
    "Notifications",
    "Page",
    "PasswordLoginAuth",
    "PermissionDeniedError",
    "RateLimitError",
    "Resource",
    "Resources",
    "RetryPolicy",
    "ServerError",
    "StaticTokenAuth",
    "StoredEvent",
    "TokenResponse",
    "UnprocessableEntityError",
    "client_options_from_config",
    "default_breakers",
    "parse_retry_after",
    "retry_delay",
    "set_testing",
    "status_error_class",
]
