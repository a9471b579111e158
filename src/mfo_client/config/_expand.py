"""`${VAR}` and `${VAR:-default}` in string values, expanded after YAML parsing.

Expanding parsed scalars rather than the file's text means a value holding `#`, `:` or a
newline can never change the YAML structure. `$$` is a literal `$`; a `$` followed by
anything else is left alone, so most passwords need no escaping. As in the shell, `:-`
also applies the default when the variable is set but empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mfo_client.config._errors import KeyPath

__all__ = ["expand_tree"]

_Failures = list[tuple[KeyPath, str]]

_REFERENCE = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bad>\{))"
)


def expand_tree(data: Any, env: Mapping[str, str]) -> tuple[Any, _Failures]:
    """Return a copy with every string expanded, plus (path, message) for each failure.

    A failed string is kept unexpanded so the caller can still validate the rest.
    """
    failures: _Failures = []
    return _expand(data, (), env, failures), failures


def _expand(value: Any, path: KeyPath, env: Mapping[str, str], failures: _Failures) -> Any:
    if isinstance(value, str):
        return _expand_string(value, path, env, failures)
    if isinstance(value, dict):
        return {k: _expand(v, (*path, k), env, failures) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*path, i), env, failures) for i, v in enumerate(value)]
    return value


def _expand_string(text: str, path: KeyPath, env: Mapping[str, str], failures: _Failures) -> str:
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match["dollar"] is not None:
            return "$"
        if match["bad"] is not None:
            problems.append(
                'malformed "${": write ${NAME} or ${NAME:-default}, or $$ for a literal "$"'
            )
            return match[0]
        value = env.get(match["name"])
        default = match["default"]
        if default is not None and not value:
            return default
        if value is None:
            problems.append(
                f'environment variable "{match["name"]}" is not set '
                f"(set it, or give a default: ${{{match['name']}:-default}})"
            )
            return match[0]
        return value

    expanded = _REFERENCE.sub(replace, text)
    failures.extend((path, problem) for problem in problems)
    return text if problems else expanded
