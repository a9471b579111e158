"""Sources at run time: a configured source turned into a verifier and intake rules."""

from __future__ import annotations

from dataclasses import dataclass

from mfo_client.config import SourceConfig
from mfo_client.webhook.schemes import HmacSpec, SchemeConfigError, Verifier, build_verifier

__all__ = ["Source", "SourceError", "build_source", "build_sources", "hmac_spec"]


class SourceError(ValueError):
    """A source that cannot be served; the message names the source and what to fix."""


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    path: str
    verifier: Verifier
    max_body_size: int
    type_header: str | None
    delivery_header: str | None
    handshake: str | None = None
    """The subscription check answered here: "slack", "meta" or None."""
    verify_token: bytes | None = None
    """Meta's Verify Token, as the bytes compared in constant time."""
    type_field: str = "type"
    """The body field naming the event type when no header does (Meta's is "object")."""
    ack_status: int = 202
    """The status an accepted event is answered with (see `SourceConfig.ack_status`)."""

    @property
    def scheme(self) -> str:
        return self.verifier.scheme


def hmac_spec(config: SourceConfig) -> HmacSpec | None:
    """The source's `hmac:` section as the verifiers' spec (SchemeConfigError if unusable)."""
    if config.hmac is None:
        return None
    return HmacSpec(
        header=config.hmac.header,
        algorithm=config.hmac.algorithm,
        encoding=config.hmac.encoding,
        prefix=config.hmac.prefix,
        timestamp_header=config.hmac.timestamp_header,
        signed_content=config.hmac.signed_content,
    )


def build_source(config: SourceConfig) -> Source:
    try:
        verifier = build_verifier(
            config.scheme,
            [s.get_secret_value() for s in config.all_secrets],
            tolerance=config.tolerance.total_seconds(),
            hmac=hmac_spec(config),
        )
    except SchemeConfigError as exc:
        raise SourceError(f'webhook source "{config.name}" ({config.path}): {exc}') from None
    return Source(
        name=config.name,
        path=config.path,
        verifier=verifier,
        max_body_size=int(config.max_body_size),
        type_header=config.type_header,
        delivery_header=config.delivery_header,
        handshake=config.handshake,
        verify_token=(
            config.verify_token.get_secret_value().encode()
            if config.verify_token is not None
            else None
        ),
        type_field="object" if config.handshake == "meta" else "type",
        ack_status=config.effective_ack_status,
    )


def build_sources(configs: list[SourceConfig]) -> list[Source]:
    """Every source, or SourceError when there is none or one cannot be built (fail closed)."""
    if not configs:
        raise SourceError(
            "no webhook source is configured: set webhook_listener.secret_key (the default "
            "GitHub-signed source at webhook_listener.path) or list webhook_listener.sources; "
            'unsigned intake needs a source with scheme "none"'
        )
    return [build_source(c) for c in configs]
