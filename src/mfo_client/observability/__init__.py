"""Logging set-up and (later) metrics for the `mfo` commands."""

from __future__ import annotations

from mfo_client.observability._logging import configure_logging, redact_secrets

__all__ = ["configure_logging", "redact_secrets"]
