"""Documented defaults, in one place so the models, docs and tests cannot drift apart."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

BASE_URL: Final = "http://127.0.0.1:8081/api"
TIMEOUT: Final = timedelta(seconds=30)

RETRY_MAX_ATTEMPTS: Final = 3
RETRY_INITIAL_BACKOFF: Final = timedelta(seconds=1)
RETRY_MAX_BACKOFF: Final = timedelta(seconds=30)
RETRY_BACKOFF_MULTIPLIER: Final = 2.0

BREAKER_FAILURE_THRESHOLD: Final = 5
BREAKER_RESET_TIMEOUT: Final = timedelta(minutes=1)

LISTENER_HOST: Final = "127.0.0.1"
LISTENER_PORT: Final = 8080
LISTENER_PATH: Final = "/webhook"

LOG_LEVEL: Final = "info"
LOG_FORMAT: Final = "text"

SIGNATURE_TOLERANCE: Final = timedelta(minutes=5)
MAX_BODY_SIZE: Final = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB

STORE_PATH: Final = ".mfo/mfo.db"
STORE_MAX_PENDING: Final = 100_000
STORE_RETENTION: Final = timedelta(days=7)

DELIVERY_MAX_ATTEMPTS: Final = 20
DELIVERY_CONCURRENCY: Final = 4
DELIVERY_LEASE_TIME: Final = timedelta(seconds=60)
DELIVERY_INITIAL_BACKOFF: Final = timedelta(seconds=1)
DELIVERY_MAX_BACKOFF: Final = timedelta(minutes=10)
