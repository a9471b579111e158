"""Unknown keys: dropped with a did-you-mean warning instead of failing the load.

Files written for a newer client (new sections, new keys) must still load on an older one,
and a typo should be easy to spot. What counts as known is read from the models, so adding
a field is all it takes to make a key known.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from mfo_client.config._errors import KeyPath
from mfo_client.config._schema import Shape, keys_of

__all__ = ["closest", "prune_unknown", "unknown_key_message"]


def prune_unknown(
    model: type[BaseModel], data: Mapping[Any, Any]
) -> tuple[dict[Any, Any], list[tuple[KeyPath, str]]]:
    """Keep only keys the models define; return the kept data and (path, message) per drop.

    A section written as an empty key (`logging:` with everything commented out) reads as
    YAML null; it is treated as an empty section rather than as an error.
    """
    unknown: list[tuple[KeyPath, str]] = []
    return _section(model, data, (), unknown), unknown


def closest(key: str, known: Iterable[str]) -> str | None:
    """The known key the user most likely meant, if any is close enough."""
    match = difflib.get_close_matches(key, list(known), n=1)
    return match[0] if match else None


def unknown_key_message(key: str, known: Iterable[str]) -> str:
    suggestion = closest(key, known)
    return f'unknown key (did you mean "{suggestion}"?)' if suggestion else "unknown key"


def _section(
    model: type[BaseModel],
    data: Mapping[Any, Any],
    path: KeyPath,
    unknown: list[tuple[KeyPath, str]],
) -> dict[Any, Any]:
    keys = keys_of(model)
    kept: dict[Any, Any] = {}
    for key, value in data.items():
        shape = keys.get(key) if isinstance(key, str) else None
        if shape is None:
            unknown.append(((*path, str(key)), unknown_key_message(str(key), keys)))
        else:
            kept[key] = _value(shape, value, (*path, key), unknown)
    return kept


def _value(shape: Shape, value: Any, path: KeyPath, unknown: list[tuple[KeyPath, str]]) -> Any:
    if shape.model is not None:
        if value is None and not shape.optional:
            return {}
        if isinstance(value, Mapping):
            return _section(shape.model, value, path, unknown)
    elif shape.items is not None and isinstance(value, list):
        return [_value(shape.items, item, (*path, i), unknown) for i, item in enumerate(value)]
    elif shape.values is not None and isinstance(value, Mapping):
        return {k: _value(shape.values, v, (*path, k), unknown) for k, v in value.items()}
    return value  # anything else is the validator's to judge
