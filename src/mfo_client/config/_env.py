"""Environment overrides: `MFO_<SECTION>__<KEY>[__<SUBKEY>...]=value`, e.g. for secrets in CI.

Levels are split on a double underscore because keys contain single ones; key matching is
case-insensitive. Variables without `__` (such as `MFO_CONFIG`) belong to the CLI and are
left alone. Values stay strings for the models to coerce, and are not `${VAR}`-expanded:
the shell that set them already had that chance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mfo_client.config._errors import ConfigProblem
from mfo_client.config._schema import keys_of
from mfo_client.config._unknown import closest

__all__ = ["PREFIX", "Override", "apply_overrides", "find_overrides"]

PREFIX = "MFO_"
_SEPARATOR = "__"


@dataclass(frozen=True)
class Override:
    variable: str
    path: tuple[str, ...]
    value: str


def find_overrides(
    model: type[BaseModel], env: Mapping[str, str]
) -> tuple[list[Override], list[ConfigProblem]]:
    """Overrides addressed to known settings, and a warning for every other `MFO_..__..`."""
    overrides: list[Override] = []
    problems: list[ConfigProblem] = []
    for variable in sorted(env):
        if not variable.upper().startswith(PREFIX):
            continue
        parts = variable[len(PREFIX) :].split(_SEPARATOR)
        if len(parts) < 2:
            continue
        found = _resolve(model, variable, parts)
        if isinstance(found, ConfigProblem):
            problems.append(found)
        else:
            overrides.append(Override(variable, found, env[variable]))
    return overrides, problems


def apply_overrides(data: Mapping[Any, Any], overrides: list[Override]) -> dict[Any, Any]:
    """A copy of `data` with each override set, creating sections the file left out."""
    result = dict(data)
    for override in overrides:
        node = result
        for key in override.path[:-1]:
            child = node.get(key)
            if child is not None and not isinstance(child, Mapping):
                break  # the file's value is already wrong; validation will say so
            child = dict(child or {})
            node[key] = child
            node = child
        else:
            node[override.path[-1]] = override.value
    return result


def _resolve(
    model: type[BaseModel], variable: str, parts: list[str]
) -> tuple[str, ...] | ConfigProblem:
    path: list[str] = []
    section: type[BaseModel] | None = model
    for depth, part in enumerate(parts):
        keys = keys_of(section) if section is not None else {}
        key = next((known for known in keys if known.lower() == part.lower()), None)
        if key is None:
            return _unknown(variable, path, parts[depth:], list(keys))
        path.append(key)
        section = keys[key].model
    if section is not None:
        example = _variable([*path, next(iter(keys_of(section)))])
        return ConfigProblem(
            file=None,
            path=".".join(path),
            message=f"names a section, not a setting; set its keys instead, e.g. {example}",
            env_var=variable,
        )
    return tuple(path)


def _unknown(variable: str, path: list[str], rest: list[str], known: list[str]) -> ConfigProblem:
    # The suggestion is a whole variable name, since that is what the user has to type.
    suggestion = closest(rest[0].lower(), known)
    hint = f' (did you mean "{_variable([*path, suggestion])}"?)' if suggestion else ""
    return ConfigProblem(
        file=None,
        path=".".join([*path, *(part.lower() for part in rest)]),
        message="unknown key" + hint,
        env_var=variable,
    )


def _variable(path: list[str]) -> str:
    return PREFIX + _SEPARATOR.join(key.upper() for key in path)
