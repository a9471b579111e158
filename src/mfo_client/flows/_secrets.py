"""Secrets in flow runs: which `${VAR}` a run may read, and the values it must never report.

Declaring. A flow file lists the environment variables it reads at its top level:
`secrets: [GITHUB_TOKEN]` for secrets, `env: [REGION]` for the rest; the config's
`flows.secrets` adds secrets any flow may read. A `${VAR}` declared nowhere fails its task.
That is deliberate, rather than letting a flow read any variable:
- a secret used but not marked secret would be reported in clear; having to put each name
  under `secrets:` or `env:` makes that choice once, in the file a reviewer reads;
- a flow file copied from elsewhere cannot quietly read what the process holds (cloud keys,
  the variable behind the MFO token) and send it to a URL;
- the file says what it needs from the environment, next to its name.

Redacting. Each run has a `Redactor` holding its secret values: the declared secret variables
that are set (expanded or not), the config's secret values (`FlowClients.secrets`: the MFO
token, passwords, webhook secrets) and `ExecutionOptions.secrets`. Values shorter than
`MIN_LENGTH` are ignored: they would mask ordinary text everywhere and hide little. The
executor replaces each occurrence inside any string with `***` in everything it reports (each
task's outputs and error in the `FlowResult`, the observer, the run history, so `mfo runs show`
and traces too) and in the log lines of the run: its own, those tasks write to `ctx.log`, and
those the libraries of the built-in tasks log while an async task runs (`httpx` logs each
request's URL at info, `mfo_client.api`: a filter on those loggers, installed by the first
run, redacts with the scope of the task running). Tasks downstream in the run still get the
real outputs.

Not caught: a secret a task transforms (base64, a hash, URL-encoding, a slice), a number,
what a task logs through another logger, or any logger from a sync task's thread. Outputs
restored by a resume are the recorded, redacted ones, and a subflow's outputs reach its parent
redacted: a task needing the secret should expand `${VAR}` in its own config rather than take
it from such an output.

Subflows. A run started from inside a task of another run shares the parent's scope: it may
read what the parent may, and the values it adds are hidden from the parent's reports too. The
executor makes a run's scope current (a context variable) in each task attempt.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Secret, SecretBytes, SecretStr

from mfo_client.flows._definition import FlowDefinition
from mfo_client.flows._template_env import EnvError

__all__ = ["MASK", "MIN_LENGTH", "Redactor", "SecretScope", "config_secrets", "current_scope"]

MASK = "***"
MIN_LENGTH = 4
"""Secret values shorter than this are not redacted."""

_CURRENT: ContextVar[SecretScope | None] = ContextVar("mfo_flow_secret_scope", default=None)
_LIBRARY_LOGGERS = ("httpx", "mfo_client.api")
"""Loggers the built-in tasks' libraries write to while a task runs (see the module docs)."""


class Redactor:
    """Replaces every known secret value inside strings with `***`, however deep in a value."""

    __slots__ = ("_pattern", "_values")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(*values)

    def add(self, *values: str) -> None:
        """Hide these values too (those shorter than `MIN_LENGTH` are ignored)."""
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH}
        if new <= self._values:
            return
        self._values |= new
        # Longest first: a secret that contains another is hidden whole. One assignment, so a
        # thread reading the pattern (a sync task logging) sees the old one or the new one.
        ordered = sorted(self._values, key=lambda v: (-len(v), v))
        self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """`value` unchanged without secrets; else a copy with every string redacted (mapping
        keys too). Any other object whose text holds a secret becomes its redacted text."""
        pattern = self._pattern
        return value if pattern is None else _redact(value, pattern)


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {_redact(k, pattern): _redact(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, pattern) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v, pattern) for v in value)
    if isinstance(value, set | frozenset):
        return type(value)(_redact(v, pattern) for v in value)
    try:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    except Exception:  # an object that cannot say what it holds cannot leak it as text
        return value
    return pattern.sub(MASK, text) if pattern.search(text) else value


@dataclass(frozen=True, slots=True)
class SecretScope:
    """What one run may read with `${VAR}`, and the `Redactor` of what it must not report."""

    secret_names: frozenset[str]
    plain_names: frozenset[str]
    environ: Mapping[str, str]
    redactor: Redactor
    source: str = "<flow>"
    """The flow file, for messages."""

    @classmethod
    def for_run(
        cls,
        definition: FlowDefinition,
        *,
        secrets: Iterable[str] = (),
        secret_env: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> SecretScope:
        """The scope of a run of `definition`: its declarations plus `secret_env` (names) and
        the values `secrets`; inside another run's task, that run's scope is extended.

        `environ` defaults to the parent run's, else `os.environ`.
        """
        names = frozenset(definition.secrets) | frozenset(secret_env)
        plain = frozenset(definition.env)
        parent = _CURRENT.get()
        if parent is not None:
            names |= parent.secret_names
            plain |= parent.plain_names
            environ = parent.environ if environ is None else environ
            redactor = parent.redactor
        else:
            redactor = Redactor()
        env: Mapping[str, str] = os.environ if environ is None else environ
        redactor.add(*secrets, *(env[name] for name in names if name in env))
        _watch_library_loggers()
        return cls(names, plain - names, env, redactor, definition.source)

    def resolve(self, name: str, default: str | None) -> str:
        """The value of `${name}` (or `${name:-default}`); `EnvError` saying what to fix."""
        if name not in self.secret_names and name not in self.plain_names:
            raise EnvError(
                f'environment variable "{name}" is not declared: list it under "secrets:" '
                '(its value is then hidden from what the run reports) or "env:" (not secret) '
                'at the top of the flow file, or under "flows.secrets" in the config',
                name,
            )
        value = self.environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise EnvError(
                f'environment variable "{name}" is not set '
                f"(set it, or give a default: ${{{name}:-default}})",
                name,
            )
        if name in self.secret_names:
            self.redactor.add(value)  # already there, unless the environment changed mid-run
        return value

    def activate(self) -> None:
        """Make this the current scope (of the task attempt running), for a run started in it."""
        _CURRENT.set(self)


class _ScopeFilter(logging.Filter):
    """Redacts a record logged while a task of a run with secrets runs (in the task's context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _CURRENT.get()
        if scope is None or not scope.redactor:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a broken format: the handler reports it, as it would anyway
            return True
        redacted = scope.redactor.text(text)
        if redacted != text:
            record.msg, record.args = redacted, ()
        return True


_FILTER = _ScopeFilter()


def _watch_library_loggers() -> None:
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def current_scope() -> SecretScope | None:
    """The scope of the run whose task is running here, if any."""
    return _CURRENT.get()


def config_secrets(model: BaseModel) -> tuple[str, ...]:
    """Every secret value set in a config, found by type (as `mfo config check` masks them):
    the MFO token, credentials, webhook secrets, and any secret field added later."""
    found: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, SecretBytes):
            found.append(value.get_secret_value().decode("utf-8", "replace"))
        elif isinstance(value, Secret):
            inner = value.get_secret_value()
            if isinstance(inner, str):
                found.append(inner)
            else:
                visit(inner)
        elif isinstance(value, str):
            return
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                visit(getattr(value, name))
        elif isinstance(value, Mapping):
            for item in value.values():
                visit(item)
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)

    visit(model)
    return tuple(dict.fromkeys(v for v in found if v))
