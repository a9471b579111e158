"""Webhook intake: sources, signature schemes, body decoding, and the listener's ASGI app.

The listener hands events to the store and never calls the MFO server itself.
"""

from __future__ import annotations

from mfo_client.webhook._app import IntakeEndpoint, create_webhook_app
from mfo_client.webhook._dispatch import Dispatch
from mfo_client.webhook._envelope import build_event
from mfo_client.webhook._errors import IntakeError
from mfo_client.webhook._sources import Source, SourceError, build_source, build_sources

__all__ = [
    "Dispatch",
    "IntakeEndpoint",
    "IntakeError",
    "Source",
    "SourceError",
    "build_event",
    "build_source",
    "build_sources",
    "create_webhook_app",
]
