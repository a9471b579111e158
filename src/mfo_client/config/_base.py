"""Shared pieces of the configuration models: the section base class and small value types."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

__all__ = ["HttpUrl", "Section", "UrlPath", "check_backoff_order", "lower"]


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise PydanticCustomError(
            "http_url", "must be an http:// or https:// URL, got {got}", {"got": f'"{value}"'}
        )
    return value


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise PydanticCustomError(
            "url_path", 'must start with "/", got {got}', {"got": f'"{value}"'}
        )
    return value


def lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
UrlPath = Annotated[str, AfterValidator(_absolute_path)]


class Section(BaseModel):
    # Unknown keys are reported as warnings by the loader before validation; ignoring them
    # here keeps direct `model_validate` calls just as tolerant.
    model_config = ConfigDict(frozen=True, extra="ignore")


def check_backoff_order(initial: timedelta, maximum: timedelta) -> None:
    """Refuse a max_backoff below initial_backoff (both retry policies have the pair)."""
    from mfo_client.config._durations import format_duration

    if maximum < initial:
        raise PydanticCustomError(
            "backoff_order",
            "max_backoff ({max}) must not be less than initial_backoff ({initial})",
            {"max": format_duration(maximum), "initial": format_duration(initial)},
        )
