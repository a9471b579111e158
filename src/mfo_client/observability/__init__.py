"""Logging set-up and Prometheus metrics for the `mfo` commands."""

from __future__ import annotations

from mfo_client.observability._logging import configure_logging, redact_secrets
from mfo_client.observability._metrics import CONTENT_TYPE_LATEST, Metrics

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "configure_logging", "redact_secrets"]
