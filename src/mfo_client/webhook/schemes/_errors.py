"""Why a delivery was refused, and why a verifier could not be built.

Hierarchy::

    Exception
     └── SignatureError         a delivery failed verification; the listener answers 401
    ValueError
     └── SchemeConfigError      `build_verifier` was given a configuration it cannot honour

The two are kept apart because they happen at different times and to different people: a
`SignatureError` is about one request (the sender's problem), a `SchemeConfigError` is raised at
start-up (the operator's problem) and stops the listener before it accepts anything.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["SchemeConfigError", "SignatureError", "SignatureReason"]

SignatureReason = Literal[
    "missing_header", "malformed_header", "mismatch", "stale_timestamp", "future_timestamp"
]
"""Machine-readable cause of a `SignatureError`, stable for logs, metrics and the JSON body."""


class SignatureError(Exception):
    """The delivery is not proven to come from the sender; always an HTTP 401 at the listener.

    `message` is safe to send back to the caller: it names the header concerned or states the
    timestamp tolerance, and never contains a secret or the signature we expected.
    """

    def __init__(self, reason: SignatureReason, message: str, *, header: str | None) -> None:
        self.reason: SignatureReason = reason
        self.header = header
        self.message = message
        super().__init__(message)


class SchemeConfigError(ValueError):
    """The scheme, secrets or options cannot make a verifier that fails closed."""
