"""Naming a URL with credentials (a Redis URL) in messages, without its secrets.

Works on the raw text, never through a URL parser: a password with an unescaped `#`, `/` or `?`
makes `urlsplit` cut the authority short (`redis://:S3cr#et@host` has netloc `:S3cr`), and the
parser's own errors quote the piece they choked on. Everything between `://` and the last `@`
(user and password) is masked, and so is the value of any query parameter whose name holds
`password`; overlapping masks merge, so no piece of a secret is left between them.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MASK", "redact_url", "strip_credentials", "userinfo_needs_encoding"]

MASK: Final = "***"
_QUERY_SECRET: Final = re.compile(r"[?&;][^=&;#?]*password[^=&;#?]*=([^&;]*)", re.IGNORECASE)


def _masked(url: str) -> list[bool]:
    """Per character of `url`, whether it belongs to a secret."""
    masked = [False] * len(url)
    start = url.find("://")
    start = 0 if start < 0 else start + 3
    # No authority (unix:///path/to/redis.sock): an `@` further on is not a user's.
    at = -1 if url.startswith("/", start) else url.rfind("@", start)
    for i in range(start, max(at, start)):
        masked[i] = True
    for match in _QUERY_SECRET.finditer(url, start):
        for i in range(*match.span(1)):
            masked[i] = True
    return masked


def redact_url(url: str) -> str:
    """`url` with its user and password (and any query password) replaced by `***`:
    `redis://:pw@host:6379/0` -> `redis://***@host:6379/0`."""
    masked = _masked(url)
    out: list[str] = []
    for i, char in enumerate(url):
        if not masked[i]:
            out.append(char)
        elif i == 0 or not masked[i - 1]:
            out.append(MASK)
    return "".join(out)


def strip_credentials(url: str) -> str:
    """`url` without its user and password (`redis://host:6379/0`), query passwords masked."""
    redacted = redact_url(url)
    scheme, sep, rest = redacted.partition("://")
    if sep and rest.startswith(f"{MASK}@"):
        return f"{scheme}://{rest[len(MASK) + 1 :]}"
    return redacted


def userinfo_needs_encoding(url: str) -> bool:
    """Whether the text before the last `@` of `url` (its user and password) holds a `/`, `?`
    or `#`: unescaped, a URL parser ends the host there and reads a wrong host, port or
    password. (An `@` in the query looks the same: percent-encoding it as %40 helps too.)"""
    _, sep, rest = url.partition("://")
    if not sep or rest.startswith("/"):  # no authority: unix:///path/to/redis.sock
        return False
    return any(char in rest[: max(rest.rfind("@"), 0)] for char in "/?#")
