"""Signing webhooks the way senders do: the exact inverse of the verifiers in `schemes`.

`sign(scheme, secret, body)` returns the headers that make `build_verifier(scheme, [secret])`
accept `body`. `build_delivery(target, body)` builds a whole request for a listener (URL,
headers, body) and `Target.from_config` reads where and how to send from the configuration;
`mfo send` is a thin layer over these, and Python code can do the same::

    target = Target.from_config(config.webhook_listener, source="github")
    url, headers, body = build_delivery(target, path.read_bytes(), event_type="push")
    httpx.post(url, content=body, headers=headers)

Nothing here does I/O. The body is signed and sent as the exact bytes given, never re-serialised:
JSON that was parsed and dumped again no longer matches its signature.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from hmac import new as hmac_new
from pathlib import PurePath
from typing import Any, Final, Literal, NamedTuple
from urllib.parse import quote_plus

from mfo_client.config import SourceConfig, WebhookListenerConfig
from mfo_client.webhook._sources import SourceError, hmac_spec
from mfo_client.webhook.schemes import HmacSpec, build_verifier
from mfo_client.webhook.schemes._build import PRESETS

# The verifiers' own pieces, so that signing cannot drift from what is checked.
from mfo_client.webhook.schemes._core import header_bytes
from mfo_client.webhook.schemes._hmac import _compile
from mfo_client.webhook.schemes._standard import decode_secret

__all__ = [
    "Delivery",
    "Target",
    "build_delivery",
    "guess_event_type",
    "sign",
]

ContentType = Literal["json", "form"]

_MEDIA_TYPES: Final = {"json": "application/json", "form": "application/x-www-form-urlencoded"}
# Wildcard listen addresses are not addresses to send to; the listener is on this machine.
_WILDCARDS: Final = {"0.0.0.0": "127.0.0.1", "::": "127.0.0.1"}  # noqa: S104 (not a bind)


def sign(
    scheme: str,
    secret: str,
    body: bytes,
    *,
    now: float | None = None,
    msg_id: str | None = None,
    hmac: HmacSpec | None = None,
) -> dict[str, str]:
    """The headers that sign `body` for `scheme`, as its verifier expects them.

    `now` (unix seconds, default the current time) is the signed time for schemes that sign
    one (standard, stripe, slack, and hmac specs with a timestamp header); `msg_id` is the
    Standard Webhooks `webhook-id` (default a fresh uuid4); `hmac` describes the sender for
    scheme "hmac". Scheme "none" signs nothing and returns `{}` whatever the secret.

    Raises `SchemeConfigError` (a `ValueError`) for an unknown scheme, an empty or malformed
    secret, or an `hmac` spec given for another scheme, with `build_verifier`'s messages.
    """
    if scheme == "none":
        return {}
    # Refuses exactly what the receiving side would refuse to be configured with.
    build_verifier(scheme, [secret], hmac=hmac)
    if msg_id is not None and scheme != "standard":
        raise ValueError(f"msg_id is only signed by scheme 'standard', not {scheme!r}")
    timestamp = _timestamp(time.time() if now is None else now)

    if scheme == "standard":
        message_id = str(uuid.uuid4()) if msg_id is None else msg_id
        content = header_bytes(message_id) + b"." + timestamp.encode("ascii") + b"." + body
        digest = _hmac(decode_secret(secret, 0), "sha256", content)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode("ascii"),
        }
    key = secret.encode("utf-8")
    if scheme == "stripe":
        digest = _hmac(key, "sha256", timestamp.encode("ascii") + b"." + body)
        return {"Stripe-Signature": f"t={timestamp},v1={digest.hex()}"}
    spec = hmac if scheme == "hmac" and hmac is not None else PRESETS[scheme]
    return _sign_hmac(spec, key, body, timestamp)


def _timestamp(now: float) -> str:
    """Whole unix seconds in ASCII digits, the only form the verifiers accept."""
    if not math.isfinite(now) or now < 0:
        raise ValueError(f"now must be a unix time in seconds >= 0, not {now!r}")
    return str(int(now))


def _hmac(key: bytes, algorithm: str, content: bytes) -> bytes:
    return hmac_new(key, content, getattr(hashlib, algorithm)).digest()


def _sign_hmac(spec: HmacSpec, key: bytes, body: bytes, timestamp: str) -> dict[str, str]:
    values = {"body": body, "timestamp": timestamp.encode("ascii")}
    # Built as bytes, split the way the verifier splits it: a body need not be UTF-8.
    pieces = _compile(spec.signed_content)
    content = b"".join(piece if isinstance(piece, bytes) else values[piece] for piece in pieces)
    digest = _hmac(key, spec.algorithm, content)
    encoded = digest.hex() if spec.encoding == "hex" else base64.b64encode(digest).decode("ascii")
    headers = {spec.header: spec.prefix + encoded}
    if spec.timestamp_header is not None:
        headers[spec.timestamp_header] = timestamp
    return headers


class _Default(enum.Enum):
    SCHEME = enum.auto()


_SCHEME_DEFAULT: Final = _Default.SCHEME


def _provider_headers(scheme: str) -> tuple[str | None, str | None]:
    """Where the listener looks for the event type and delivery id of `scheme`, by default."""
    # Asked of the configuration model itself, the one place these defaults are defined
    # (constructed unvalidated: a probe needs no secret).
    fields: dict[str, Any] = {"name": "send", "path": "/", "scheme": scheme}
    probe = SourceConfig.model_construct(**fields)
    return probe.type_header, probe.delivery_header


@dataclass(frozen=True)
class Target:
    """Where to send and how that source verifies and reads deliveries.

    `type_header` and `delivery_header` are where the event type and the delivery id go (None:
    not sent); `Target.for_scheme` fills them in as the listener expects for the scheme.
    """

    url: str
    scheme: str = "github"
    secret: str = field(default="", repr=False)
    hmac: HmacSpec | None = None
    type_header: str | None = None
    delivery_header: str | None = None

    @classmethod
    def for_scheme(
        cls,
        url: str,
        scheme: str = "github",
        secret: str = "",
        *,
        hmac: HmacSpec | None = None,
        type_header: str | _Default | None = _SCHEME_DEFAULT,
        delivery_header: str | _Default | None = _SCHEME_DEFAULT,
    ) -> Target:
        """A target whose headers are the scheme's defaults unless given (None: not sent)."""
        default_type, default_delivery = _provider_headers(scheme)
        return cls(
            url=url,
            scheme=scheme,
            secret=secret,
            hmac=hmac,
            type_header=default_type if type_header is _SCHEME_DEFAULT else type_header,
            delivery_header=(
                default_delivery if delivery_header is _SCHEME_DEFAULT else delivery_header
            ),
        )

    @classmethod
    def from_config(
        cls, listener: WebhookListenerConfig, source: str | None = None, *, url: str | None = None
    ) -> Target:
        """The listener's URL for `source`, its scheme, current (first) secret and headers.

        `source` names a configured source; by default the only one, else the one named
        "default". `url` replaces the listener's address (behind a proxy, or when the port is
        0 and so chosen at start). Raises `SourceError` (a `ValueError`) naming the configured
        sources when the choice is unknown or ambiguous, or when port 0 leaves no address.
        """
        config = _select_source(listener, source)
        if url is None:
            if listener.port == 0:
                raise SourceError(
                    "webhook_listener.port is 0 (any free port, chosen when the listener "
                    "starts), so the address to send to is unknown; give the URL instead"
                )
            host = _WILDCARDS.get(listener.host, listener.host)
            authority = f"[{host}]" if ":" in host else host
            url = f"http://{authority}:{listener.port}{config.path}"
        secrets = config.all_secrets
        spec = hmac_spec(config) if config.scheme == "hmac" else None
        return cls(
            url=url,
            scheme=config.scheme,
            secret=secrets[0].get_secret_value() if secrets else "",
            hmac=spec,
            type_header=config.type_header,
            delivery_header=config.delivery_header,
        )


def _select_source(listener: WebhookListenerConfig, name: str | None) -> SourceConfig:
    sources = listener.effective_sources()
    names = ", ".join(f'"{s.name}" ({s.path})' for s in sources)
    if not sources:
        raise SourceError(
            "the configuration has no webhook source (set webhook_listener.secret_key or list "
            "webhook_listener.sources)"
        )
    by_name = {s.name: s for s in sources}
    if name is not None:
        if name not in by_name:
            raise SourceError(f'no webhook source is named "{name}"; configured: {names}')
        return by_name[name]
    if len(sources) == 1:
        return sources[0]
    if "default" in by_name:
        return by_name["default"]
    raise SourceError(f"several webhook sources are configured, choose one of: {names}")


class Delivery(NamedTuple):
    """One request to a listener; unpacks as `url, headers, body`."""

    url: str
    headers: dict[str, str]
    body: bytes


def build_delivery(
    target: Target,
    body: bytes,
    *,
    event_type: str | None = None,
    delivery_id: str | None = None,
    content_type: ContentType = "json",
    now: float | None = None,
) -> Delivery:
    """The signed request that delivers `body` (sent as these exact bytes) to `target`.

    `content_type="form"` sends `payload=<urlencoded body>` as GitHub's form mode does, and
    signs that form body. `event_type` goes into `target.type_header` when it has one;
    `delivery_id` (default a fresh uuid4) into `target.delivery_header`, and is the
    `webhook-id` for scheme "standard". Raises `ValueError` (`SchemeConfigError`) when the
    target cannot be signed for.
    """
    delivery_id = str(uuid.uuid4()) if delivery_id is None else delivery_id
    if content_type == "form":
        body = b"payload=" + quote_plus(body).encode("ascii")
    headers = {"Content-Type": _MEDIA_TYPES[content_type]}
    headers.update(
        sign(
            target.scheme,
            target.secret,
            body,
            now=now,
            msg_id=delivery_id if target.scheme == "standard" else None,
            hmac=target.hmac,
        )
    )
    present = {name.lower() for name in headers}
    if target.type_header is not None and event_type is not None:
        headers[target.type_header] = event_type
    # For "standard" the delivery header is `webhook-id`, already set by the signature.
    if target.delivery_header is not None and target.delivery_header.lower() not in present:
        headers[target.delivery_header] = delivery_id
    return Delivery(target.url, headers, body)


def guess_event_type(filename: str, body: bytes) -> str | None:
    """The event type a saved delivery was sent with, from its file name, or None.

    Files named `<event>.<variant>.json` (or `<event>.json`) hold a delivery of `<event>`,
    as in `push.new_branch.json`. A body with its own top-level `type` (the seed format
    `{"type": ..., "payload": ...}`, Standard Webhooks) names its type itself, so None is
    returned for it and the listener reads the type from the body.
    """
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("type"), str):
        return None
    event = PurePath(filename).name.split(".", 1)[0]
    return event or None
