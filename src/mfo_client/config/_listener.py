"""The `webhook_listener` section: where webhooks arrive and how each source is verified.

The seed file's single `path` + `secret_key` is the default source (GitHub's signature scheme);
`sources` adds named sources, each with its own path, scheme and secrets. Verification is
fail-closed: a source without a secret is a configuration error unless its scheme is `none`.
A source's `handshake` answers the provider's check of the URL (Slack's `url_verification`,
Meta's `hub.challenge`) and is off unless configured.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ByteSize, Field, SecretStr, model_validator
from pydantic_core import PydanticCustomError

from mfo_client.config import _defaults
from mfo_client.config._base import Section, UrlPath
from mfo_client.config._durations import Duration

__all__ = [
    "SCHEMES",
    "HmacSchemeConfig",
    "MetricsConfig",
    "SourceConfig",
    "WebhookListenerConfig",
]

Scheme = Literal["github", "standard", "stripe", "hmac", "slack", "shopify", "none"]
SCHEMES: tuple[str, ...] = ("github", "standard", "stripe", "hmac", "slack", "shopify", "none")
Handshake = Literal["slack", "meta"]
# Meta signs its deliveries as GitHub does (X-Hub-Signature-256); hmac covers the legacy
# SHA-1 header, and none a local test.
_META_SCHEMES = ("github", "hmac", "none")

# Where each provider puts the event type and the delivery id, unless a source says otherwise.
_TYPE_HEADER: dict[str, str | None] = {
    "github": "X-GitHub-Event",
    "shopify": "X-Shopify-Topic",
}
_DELIVERY_HEADER: dict[str, str | None] = {
    "github": "X-GitHub-Delivery",
    "standard": "webhook-id",
    "shopify": "X-Shopify-Webhook-Id",
}

SourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class HmacSchemeConfig(Section):
    """A generic HMAC signature: which header, algorithm, encoding and signed content."""

    header: str = Field(min_length=1)
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    signed_content: str = "{body}"

    @model_validator(mode="after")
    def _content_has_body(self) -> Self:
        if "{body}" not in self.signed_content:
            raise PydanticCustomError(
                "signed_content",
                "signed_content must contain {body}, got {got}",
                {"got": f'"{self.signed_content}"'},
            )
        if "{timestamp}" in self.signed_content and not self.timestamp_header:
            raise PydanticCustomError(
                "signed_content",
                "signed_content uses {timestamp} but timestamp_header is not set",
                {},
            )
        return self


class SourceConfig(Section):
    """One webhook source: a path, a verification scheme and how to read its events."""

    name: SourceName
    path: UrlPath
    scheme: Scheme = "github"
    secrets: tuple[SecretStr, ...] = ()
    secret: SecretStr | None = None
    tolerance: Duration = _defaults.SIGNATURE_TOLERANCE
    max_body_size: ByteSize = ByteSize(_defaults.MAX_BODY_SIZE)
    hmac: HmacSchemeConfig | None = None
    event_type_header: str | None = None
    delivery_id_header: str | None = None
    handshake: Handshake | None = None
    """Answer the provider's subscription check of this URL; None answers none."""
    verify_token: SecretStr | None = None
    """The Verify Token typed into the Meta App Dashboard (handshake "meta" only)."""
    ack_status: Literal[200, 202] | None = None
    """The status of the acknowledgement: 202 Accepted, or 200 for providers that count only
    200 as delivered (Meta's platforms). Default: 200 with `handshake: meta`, else 202."""

    @property
    def effective_ack_status(self) -> int:
        if self.ack_status is not None:
            return self.ack_status
        return 200 if self.handshake == "meta" else 202

    @model_validator(mode="after")
    def _handshake_settings(self) -> Self:
        if self.handshake == "meta":
            if self.verify_token is None or not self.verify_token.get_secret_value().strip():
                raise PydanticCustomError(
                    "missing_verify_token",
                    'handshake "meta" needs a non-empty verify_token: the Verify Token set in '
                    "the Meta App Dashboard, e.g. verify_token: ${META_VERIFY_TOKEN}",
                    {},
                )
            if self.scheme not in _META_SCHEMES:
                raise PydanticCustomError(
                    "handshake_scheme",
                    'handshake "meta" goes with scheme "github" (Meta signs X-Hub-Signature-256 '
                    'with the app secret), "hmac" or "none"; got scheme {scheme}',
                    {"scheme": f'"{self.scheme}"'},
                )
        elif self.verify_token is not None:
            raise PydanticCustomError(
                "unused_verify_token",
                'verify_token is only used by handshake "meta"; set handshake: meta or remove '
                "verify_token",
                {},
            )
        if self.handshake == "slack" and self.scheme != "slack":
            raise PydanticCustomError(
                "handshake_scheme",
                'handshake "slack" needs scheme "slack": its url_verification request is '
                "answered only once Slack's signature verified; got scheme {scheme}",
                {"scheme": f'"{self.scheme}"'},
            )
        return self

    @model_validator(mode="after")
    def _fail_closed(self) -> Self:
        given = [s for s in self.all_secrets if s.get_secret_value().strip()]
        if self.scheme == "none":
            if given:
                raise PydanticCustomError(
                    "scheme_none",
                    'scheme "none" takes no secrets; remove them or pick a scheme',
                    {},
                )
        elif not given or len(given) != len(self.all_secrets):
            raise PydanticCustomError(
                "missing_secret",
                'scheme "{scheme}" needs a non-empty secret (secret: or secrets:); '
                'use scheme "none" to accept unsigned requests',
                {"scheme": self.scheme},
            )
        if self.scheme == "hmac" and self.hmac is None:
            raise PydanticCustomError(
                "missing_hmac", 'scheme "hmac" needs an hmac: section (header, algorithm, ...)', {}
            )
        return self

    @property
    def all_secrets(self) -> list[SecretStr]:
        """`secret` and `secrets` together, in order: the first is the current one."""
        return ([self.secret] if self.secret is not None else []) + list(self.secrets)

    @property
    def type_header(self) -> str | None:
        # Meta shares GitHub's signature but none of its headers.
        default = None if self.handshake == "meta" else _TYPE_HEADER.get(self.scheme)
        return self.event_type_header or default

    @property
    def delivery_header(self) -> str | None:
        default = None if self.handshake == "meta" else _DELIVERY_HEADER.get(self.scheme)
        return self.delivery_id_header or default


class MetricsConfig(Section):
    """Prometheus metrics: on the webhook port by default, or on a port of their own so they
    are not exposed where webhooks arrive."""

    enabled: bool = True
    path: UrlPath = "/metrics"
    host: str | None = None
    """Defaults to the listener's host."""
    port: int | None = Field(default=None, ge=0, le=65535)
    """None: served on the webhook port."""


class WebhookListenerConfig(Section):
    """Where the local HTTP listener accepts webhooks; port 0 picks any free port."""

    host: str = _defaults.LISTENER_HOST
    port: int = Field(default=_defaults.LISTENER_PORT, ge=0, le=65535)
    path: UrlPath = _defaults.LISTENER_PATH
    secret_key: SecretStr | None = None
    max_body_size: ByteSize = ByteSize(_defaults.MAX_BODY_SIZE)
    sources: tuple[SourceConfig, ...] = ()
    proxy_headers: bool = False
    """Trust X-Forwarded-For/-Proto from `forwarded_allow_ips` (behind a reverse proxy)."""
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    root_path: str = ""
    """The prefix a reverse proxy serves the listener under and strips, e.g. "/mfo"."""

    @model_validator(mode="after")
    def _unique_sources(self) -> Self:
        if self.secret_key is not None:
            for source in self.sources:
                if source.path == self.path:
                    raise PydanticCustomError(
                        "duplicate_path",
                        "secret_key makes {path} the default source, and source {name} "
                        "listens there too; remove secret_key or give that source another path",
                        {"path": f'"{self.path}"', "name": f'"{source.name}"'},
                    )
        seen_names: set[str] = set()
        seen_paths: set[str] = set()
        for source in self.effective_sources():
            if source.name in seen_names:
                raise PydanticCustomError(
                    "duplicate_source", "two sources are named {name}", {"name": f'"{source.name}"'}
                )
            if source.path in seen_paths:
                raise PydanticCustomError(
                    "duplicate_path", "two sources listen on {path}", {"path": f'"{source.path}"'}
                )
            seen_names.add(source.name)
            seen_paths.add(source.path)
        return self

    def effective_sources(self) -> list[SourceConfig]:
        """`sources`, plus the default source from `path` + `secret_key` when a secret is set.

        With no `sources` and no `secret_key` there is no source at all; `mfo serve` refuses
        to start then rather than accept unsigned webhooks.
        """
        sources = list(self.sources)
        if self.secret_key is not None:
            sources.insert(
                0,
                SourceConfig(
                    name="default",
                    path=self.path,
                    scheme="github",
                    secret=self.secret_key,
                    max_body_size=self.max_body_size,
                ),
            )
        return sources
