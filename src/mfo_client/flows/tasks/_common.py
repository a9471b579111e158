"""What every built-in task shares: config parsing with readable errors, and the upstream data.

A factory is called twice: at build time with the raw config, where `{{...}}` templates are not
rendered yet, and right before the run with the rendered config. A templated string is
therefore never a config error by itself: a value that fails validation only because it is
still a template is let through at build time, and the task built from it fails when run, with
the same message, should the value still be a template after rendering.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails

from mfo_client.config._messages import describe, show
from mfo_client.config._unknown import closest
from mfo_client.flows._context import FlowContext
from mfo_client.flows._errors import TaskError
from mfo_client.flows._registry import TaskCallable, TaskFactory

__all__ = [
    "NO_BODY",
    "NO_TEMPLATE",
    "MessageConfig",
    "TaskConfig",
    "TaskConfigError",
    "config_factory",
    "idempotency_key",
    "is_templated",
    "upstream_data",
    "validate",
]

C = TypeVar("C", bound="TaskConfig")

_TEMPLATE = re.compile(r"\{\{|\{%|\$\{")  # `${VAR}` is expanded when rendered too
NO_BODY: Any = object()
"""`idempotency_key` without a body: the task's own key."""
MAX_KEY_LENGTH = 255
"""The longest Idempotency-Key the MFO API takes."""


class TaskConfig(BaseModel):
    """Base of the built-in tasks' config models: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MessageConfig(TaskConfig):
    """A message given as `message_template` (the seed files' name) or `message`."""

    message_template: str | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _one_message(self) -> Self:
        if self.message is None and self.message_template is None:
            raise ValueError("message_template (or message) is required, but not set")
        if self.message is not None and self.message_template is not None:
            raise ValueError("give message_template or message, not both")
        return self

    @property
    def text(self) -> str:
        return self.message if self.message is not None else self.message_template or ""


class TaskConfigError(TaskError, ValueError):
    """A task's config is invalid: `problems` holds one `(key path, message)` per problem.

    A ValueError, as the registry expects of factories, and a TaskError, so that a config that
    only turns out invalid once rendered fails its task cleanly.
    """

    def __init__(self, task_type: str, problems: list[tuple[str, str]], hint: str = "") -> None:
        self.task_type = task_type
        self.problems = problems
        listed = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
        super().__init__(f"invalid config for {task_type}: {listed}{hint}")


NO_TEMPLATE = "no_template"
"""The error type of a field that must not be templated (security policy, e.g. allow_hosts)."""


def is_templated(value: object) -> bool:
    """Whether a value is a string holding a template not rendered yet."""
    return isinstance(value, str) and _TEMPLATE.search(value) is not None


class _Unrendered:
    """The task built from a config whose only faults are templates: running it fails."""

    def __init__(self, error: TaskConfigError) -> None:
        self.error = error

    def __call__(self, ctx: FlowContext) -> None:
        raise self.error


def parse_config(model: type[C], config: object, task_type: str) -> C | _Unrendered:
    """The validated config, or, when only still-templated values fail, a task that fails."""
    if not isinstance(config, Mapping):
        problem = f"config must be a mapping of keys, got {show(config)}"
        raise TaskConfigError(task_type, [("", problem)])
    try:
        return model.model_validate(dict(config))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    # An unknown key is wrong whatever its value; any other fault of a template may be cured
    # by rendering it.
    definite = [
        e
        for e in errors
        if e["type"] == "extra_forbidden"
        or e["loc"][:1] == ("allow_hosts",)
        or not is_templated(e["input"])
    ]
    if definite:
        raise _config_error(model, definite, task_type)
    return _Unrendered(
        TaskConfigError(
            task_type,
            [(_path(e["loc"]), describe(e)) for e in errors],
            " (the value is still a template after rendering)",
        )
    )


def validate(model: type[C], data: object, what: str) -> C:
    """`data` validated with `model`, templates or not; TaskConfigError naming `what`."""
    if not isinstance(data, Mapping):
        raise TaskConfigError(what, [("", f"must be a mapping of keys, got {show(data)}")])
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise _config_error(model, exc.errors(include_url=False), what) from None


def config_factory(
    task_type: str, model: type[C], build: Callable[[C], TaskCallable]
) -> TaskFactory:
    """A factory that validates its config with `model` and builds the task with `build`."""

    def factory(config: Mapping[str, Any]) -> TaskCallable:
        parsed = parse_config(model, config, task_type)
        return parsed if isinstance(parsed, _Unrendered) else build(parsed)

    factory.__name__ = task_type
    factory.__qualname__ = task_type
    factory.__doc__ = f"Build a `{task_type}` from its config ({model.__name__})."
    return factory


def idempotency_key(ctx: FlowContext, body: Any = NO_BODY) -> str | None:
    """The Idempotency-Key of a task's request: `<run id>:<task id>` (`[<index>]` for a
    `for_each` item), then `:` and a hash of `body`, the request's content.

    Every attempt of the same request gets the same key, so a retry, or a resume after a crash
    in the middle of the call, is applied once at the server. A request whose content changed
    (on resume, an upstream output it uses differs now) is another request, with another key:
    the server would refuse the old key with another body for good (`idempotency_key_reused`).
    Without `body`, the key of the task itself (what event ids derive from). None outside a
    recorded run.
    """
    run_id = ctx.task.run_id
    if not run_id:
        return None
    key = f"{run_id}:{ctx.task.id}"
    if ctx.task.index is not None:
        key += f"[{ctx.task.index}]"
    if body is not NO_BODY:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        key += ":" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
    if len(key) > MAX_KEY_LENGTH:  # long ids (nested subflow runs): a hash of it all
        key = "flow:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def upstream_data(ctx: FlowContext) -> Any:
    """What a task works on by default: with one dependency, that task's outputs; with several,
    their outputs by task id; with none, the run's initial input."""
    deps = ctx.task.dependencies
    if not deps:
        return dict(ctx.input)
    upstream = {dep: _plain(outputs) for dep, outputs in ctx.upstream().items()}
    return upstream[deps[0]] if len(deps) == 1 else upstream


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _config_error(model: type[BaseModel], errors: list[ErrorDetails], what: str) -> TaskConfigError:
    unknown = any(e["type"] == "extra_forbidden" for e in errors)
    hint = f"; allowed keys: {', '.join(sorted(_keys(model)))}" if unknown else ""
    return TaskConfigError(what, [_problem(model, e) for e in errors], hint)


def _keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _problem(model: type[BaseModel], error: ErrorDetails) -> tuple[str, str]:
    path = _path(error["loc"])
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
        suggestion = closest(str(error["loc"][0]), _keys(model))
        message = f'unknown key (did you mean "{suggestion}"?)' if suggestion else "unknown key"
        return path, message
    if error["type"] == "string_too_short" and (error.get("ctx") or {}).get("min_length") == 1:
        return path, "must not be empty"
    return path, describe(error)


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text
