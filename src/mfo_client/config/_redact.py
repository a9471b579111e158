"""The effective configuration as plain data that is safe to print or log.

Secrets are found by type (any pydantic secret, wherever it sits) rather than by a list of
field names, so a field added later is masked without anyone remembering to.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

__all__ = ["MASK", "redact"]

MASK = "***"
_SECRET_TYPES = (SecretStr, SecretBytes, Secret)


def redact(model: BaseModel) -> dict[str, Any]:
    """`model_dump(mode="json")` with every set secret replaced by `"***"`; unset stays None."""
    masked = _mask(model, model.model_dump(mode="json"))
    assert isinstance(masked, dict)
    return masked


def _mask(value: Any, dumped: Any) -> Any:
    # Walk the live objects next to their dump: the objects say what is secret, the dump
    # holds the serialised form (durations as text and so on) of everything else.
    if isinstance(value, _SECRET_TYPES):
        return MASK
    if isinstance(value, BaseModel):
        return {
            name: _mask(getattr(value, name), dumped[name]) for name in type(value).model_fields
        }
    if isinstance(value, dict):
        return {
            key: _mask(item, dumped_item)
            for item, (key, dumped_item) in zip(value.values(), dumped.items(), strict=True)
        }
    if isinstance(value, list | tuple):
        return [_mask(item, dumped_item) for item, dumped_item in zip(value, dumped, strict=True)]
    return dumped
