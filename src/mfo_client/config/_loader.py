"""From a YAML file (or parsed data) to a validated model, collecting every problem on the way.

The steps, in order: drop unknown keys (warnings), expand `${VAR}` in what is left, apply
`MFO_...` environment overrides, validate. Each problem is then pinned to where the user can
fix it: the environment variable that supplied the value, or else the file line of its key.
The steps are generic over the model class; `Config` is only the usual one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mfo_client.config._env import Override, apply_overrides, find_overrides
from mfo_client.config._errors import ConfigError, ConfigProblem, KeyPath, format_path
from mfo_client.config._expand import expand_tree
from mfo_client.config._messages import describe, show
from mfo_client.config._schema import keys_of, shape_at
from mfo_client.config._unknown import prune_unknown
from mfo_client.config._yaml import Lines, read_yaml

__all__ = ["load_data", "load_file"]

ModelT = TypeVar("ModelT", bound=BaseModel)

logger = logging.getLogger("mfo_client.config")
# Warnings reach the user through the CLI or `Config.warnings`; without this, Python's
# last-resort handler would print them a second time when logging is not configured.
logger.addHandler(logging.NullHandler())


def load_file(
    model: type[ModelT], path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> tuple[ModelT, list[ConfigProblem]]:
    """Load and validate a YAML file; return the model and the warnings."""
    file = os.fspath(path)
    data, lines = read_yaml(file)
    return load_data(model, data, source=file, env=env, lines=lines)


def load_data(
    model: type[ModelT],
    data: Any,
    *,
    source: str,
    env: Mapping[str, str] | None = None,
    lines: Lines | None = None,
) -> tuple[ModelT, list[ConfigProblem]]:
    """Validate parsed data; raise `ConfigError` with all problems, or return model and warnings."""
    env = os.environ if env is None else env
    overrides, env_warnings = find_overrides(model, env)
    pins = _Pins(source, lines or {}, overrides)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        sections = ", ".join(keys_of(model))
        message = f"the top level must be a mapping of sections ({sections}), got {show(data)}"
        raise ConfigError([pins.problem((), message)])

    data, unknown = prune_unknown(model, data)
    data, failures = expand_tree(data, env)
    # A file value replaced from the environment does not matter, even if it cannot expand.
    failures = [(path, message) for path, message in failures if pins.override(path) is None]
    data = apply_overrides(data, overrides)
    warnings = [pins.problem(path, message) for path, message in unknown] + env_warnings
    errors = [pins.problem(path, message) for path, message in failures]

    result: ModelT | None = None
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        failed = [path for path, _ in failures]
        for error in exc.errors(include_url=False):
            path = error["loc"]
            if any(path[: len(prefix)] == prefix for prefix in failed):
                continue  # already reported: the value could not even be expanded
            shape = shape_at(model, path)
            secret = shape is not None and shape.secret
            errors.append(pins.problem(path, describe(error, secret=secret)))

    for warning in warnings:
        logger.warning("%s", warning)
    if errors or result is None:
        raise ConfigError(sorted(errors, key=_reading_order), warnings)
    return result, warnings


class _Pins:
    """Turns a key path into a located problem: env variable first, then file line."""

    def __init__(self, source: str, lines: Lines, overrides: list[Override]) -> None:
        self.source = source
        self.lines = lines
        self.overrides = overrides

    def override(self, path: KeyPath) -> Override | None:
        """The environment variable that supplied the value at (or above) `path`, if any."""
        for override in reversed(self.overrides):  # the last one applied wins
            if path[: len(override.path)] == override.path:
                return override
        return None

    def problem(self, path: KeyPath, message: str) -> ConfigProblem:
        override = self.override(path)
        if override is not None:
            return ConfigProblem(
                file=None, path=format_path(path), message=message, env_var=override.variable
            )
        return ConfigProblem(
            file=self.source, path=format_path(path), message=message, line=self._line(path)
        )

    def _line(self, path: KeyPath) -> int | None:
        if not path:
            return self.lines.get(path)
        # A missing key has no line of its own; point at the nearest parent that has one.
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def _reading_order(problem: ConfigProblem) -> tuple[bool, int]:
    return problem.env_var is not None, problem.line or 0
