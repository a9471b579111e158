"""Pydantic's validation errors, reworded as help: what is allowed and what was given.

Messages raised by this package's own validators are already complete and lower-case, and
pass through unchanged. The value given is never echoed for a secret field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic_core import ErrorDetails

__all__ = ["describe"]

_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}
_SIMPLE = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "dict_type": "must be a mapping of keys",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "string_type": "must be a string",
}
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
_MAX_SHOWN = 60


def describe(error: ErrorDetails, *, secret: bool = False) -> str:
    """One line for one pydantic error, without pydantic's wording or URLs."""
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error["input"]
    got = "" if secret else f", got {show(value)}"
    if kind == "missing":
        return "required, but not set"
    if kind in _BOUNDS:
        operator, bound = _BOUNDS[kind]
        return f"must be {operator} {ctx[bound]}{got}"
    if kind in ("literal_error", "enum"):
        choices = _QUOTED.findall(str(ctx.get("expected", ""))) or [str(ctx.get("expected"))]
        return f"must be one of {', '.join(choices)}{got}"
    if kind in _SIMPLE:
        message = _SIMPLE[kind] + got
        if kind == "string_type" and isinstance(value, int | float):
            message += " (quote the value in YAML)"
        return message
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message.removeprefix(prefix)
    if message.startswith("Input should be "):
        return "must be " + message.removeprefix("Input should be ") + got
    if message[:1].isupper():  # some other pydantic message: keep its sense, add the value
        return message[0].lower() + message[1:] + got
    return message


def show(value: Any) -> str:
    """A given value as a user would recognise it from YAML."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 4] + '..."'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)
