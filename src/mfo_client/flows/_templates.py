"""Templates in task config: Go-style `{{.input.dataID}}` and Jinja2, rendered in a sandbox.

Flow files written for the Go engine use `{{.eventName}}`; inside `{{ }}` and `{% %}` a dot that
starts a reference is dropped, so the rest is plain Jinja2 (`{{ input.dataID | upper }}`). Each
distinct template is translated and compiled once (`_compile` is cached): rendering is on the hot
path. A string that is exactly one `{{ expression }}` renders to the value itself, typed; any
other template renders to text.

Everything runs in Jinja2's immutable sandbox with `StrictUndefined`: a missing variable is an
error naming its dotted path, never empty text; escapes (`''.__class__...`) fail as unsafe; and
every render is bounded in size and in work, checked before the work is done (see
`_template_limits`):
rendering runs on the event loop, where no timeout can interrupt it.

`${VAR}` and `${VAR:-default}` in the flow file's text are expanded here too, from the
environment of the run's `SecretScope` (see `_template_env` for how they mix with templates
and why data never gets expanded, `_secrets` for which variables a run may read).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence, Set, ValuesView
from dataclasses import dataclass
from typing import Any, NoReturn

from jinja2 import (
    Template,
    nodes,
)
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import Undefined

from mfo_client.flows._errors import TemplateError
from mfo_client.flows._secrets import SecretScope, current_scope
from mfo_client.flows._template_env import (
    ENV_DATA,
    EnvError,
    env_problem,
    expand_template,
    expand_text,
    has_env,
)
from mfo_client.flows._template_go import (
    WholeDataError,
    single_expression,
    translate_expression,
    translate_template,
)
from mfo_client.flows._template_limits import ENV, MAX_OUTPUT, LimitError, WorkError, too_deep

__all__ = ["check_templates", "has_templates", "render_config"]

_CACHE_SIZE = 2048


# -- Compiling, cached -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    source: str
    """The translated Jinja2 source, for explaining errors."""
    template: Template
    expression: TemplateExpression | None
    """Set when the string is one `{{ expression }}`: it renders to the typed value."""


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile(source: str) -> _Compiled:
    translated = translate_template(source)
    template = ENV.from_string(translated)
    expression = None
    if (inner := single_expression(source)) is not None:
        # Valid as a template but not as one expression (`{{ a, b }}`): render it as text.
        with contextlib.suppress(TemplateSyntaxError):
            expression = ENV.compile_expression(
                translate_expression(inner), undefined_to_none=False
            )
    return _Compiled(translated, template, expression)


# -- Rendering -------------------------------------------------------------------------------


def has_templates(value: Any) -> bool:
    """Whether rendering may change a config value: it holds a template or a `${VAR}` (or
    `$$`) anywhere (values only, not keys)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value or has_env(value)
    if isinstance(value, Mapping):
        return any(has_templates(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_templates(v) for v in value)
    return False


def render_config(
    config: Mapping[str, Any],
    variables: Mapping[str, Any],
    *,
    task_id: str,
    flow: str,
    scope: SecretScope | None = None,
) -> dict[str, Any]:
    """A copy of a task's config with every template string rendered against the run's data,
    and each `${VAR}` of its text expanded from `scope` (by default the scope of the run whose
    task calls this, as a subflow's input does; outside a run, `${VAR}` stays as written).

    Raises TemplateError naming the config key, task and flow, and for a missing variable its
    dotted path and which part of it is missing (for `${VAR}`, its name and the flow's file).
    """
    where = (task_id, flow)
    scope = scope if scope is not None else current_scope()
    return {
        key: _render(value, variables, ("config", key), where, scope)
        for key, value in config.items()
    }


def _render(
    value: Any,
    variables: Mapping[str, Any],
    path: tuple[Any, ...],
    where: tuple[str, str],
    scope: SecretScope | None,
) -> Any:
    if isinstance(value, str):
        if scope is not None and has_env(value):
            return _render_env(value, variables, path, where, scope)
        if "{{" in value or "{%" in value:
            return _render_string(value, variables, path, where)
        return value
    if isinstance(value, Mapping):
        return {k: _render(v, variables, (*path, k), where, scope) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_render(v, variables, (*path, i), where, scope) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return _materialize(value)


def _render_env(
    source: str,
    variables: Mapping[str, Any],
    path: tuple[Any, ...],
    where: tuple[str, str],
    scope: SecretScope,
) -> Any:
    """A config string holding `${...}`: expanded, then rendered if it holds templates."""
    try:
        if "{{" not in source and "{%" not in source:
            return expand_text(source, scope.resolve)
        translated, values = expand_template(source, scope.resolve)
    except EnvError as exc:
        task_id, flow = where
        key = _key_path(path)
        file = "" if scope.source.startswith("<") else f" ({scope.source})"
        details = {"variable": exc.variable} if exc.variable is not None else {}
        raise TemplateError(
            f'flow "{flow}"{file}, task "{task_id}", {key}: {exc.message}',
            flow=flow,
            task=task_id,
            key=key,
            **details,
        ) from None
    data = {**variables, ENV_DATA: values} if values else variables
    return _render_string(translated, data, path, where)


def _render_string(
    source: str, variables: Mapping[str, Any], path: tuple[Any, ...], where: tuple[str, str]
) -> Any:
    try:
        compiled = _compile(source)
        if compiled.expression is not None:
            return _materialize(compiled.expression(variables))
        return _render_text(compiled.template, variables)
    except Exception as exc:
        task_id, flow = where
        key = _key_path(path)
        prefix = f'flow "{flow}", task "{task_id}", {key}'
        translated = _translate_or_none(source)
        raise _template_error(
            prefix, exc, translated, variables, expression=False, flow=flow, task=task_id, key=key
        ) from exc


def _render_text(template: Template, variables: Mapping[str, Any]) -> str:
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(variables):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise LimitError(
                f"the rendered text is longer than the limit of {MAX_OUTPUT} characters"
            )
        chunks.append(chunk)
    return "".join(chunks)


def _materialize(value: Any) -> Any:
    """The value, with containers copied (the run's data stays untouched) and iterators listed.

    Fails on an undefined value anywhere inside, as rendering it to text would, and once the
    copy passes MAX_OUTPUT characters and items (a nested value counts each time it appears:
    `[[s] * 1000] * 1000` is cheap to build and huge to copy), before copying more.
    """
    if isinstance(value, str):
        if len(value) > MAX_OUTPUT:
            raise LimitError(f"the value is longer than the limit of {MAX_OUTPUT} characters")
        return value
    left = MAX_OUTPUT

    def copy(value: Any) -> Any:
        nonlocal left
        left -= len(value) if isinstance(value, str) else 1
        if left < 0:
            raise LimitError(too_deep("the value", MAX_OUTPUT - left))
        if isinstance(value, str):
            return value
        if isinstance(value, Undefined):
            _fail(value)
        if isinstance(value, Mapping):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [copy(v) for v in value]
        if isinstance(value, tuple):
            return tuple(copy(v) for v in value)
        if isinstance(value, Iterator | range | Set | ValuesView):
            return [copy(v) for v in value]
        return value

    return copy(value)


def _fail(value: Undefined) -> NoReturn:
    value._fail_with_undefined_error()


def check_templates(config: Mapping[str, Any]) -> list[str]:
    """Syntax problems of every template string (and `${VAR}`) in a task's config, one
    message each.

    Each names the config key (`config.url: template syntax error on line 1: ...`).
    """
    problems: list[str] = []

    def visit(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, str):
            if (problem := env_problem(value)) is not None:
                problems.append(f"{_key_path(path)}: {problem}")
            if "{{" in value or "{%" in value:
                try:
                    _compile(value)
                except (TemplateSyntaxError, WholeDataError) as exc:
                    problems.append(f"{_key_path(path)}: {_syntax_problem(exc, expression=False)}")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                visit(v, (*path, k))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                visit(v, (*path, i))

    for key, value in config.items():
        visit(value, ("config", key))
    return problems


# -- Explaining failures (shared with `_expressions`) ----------------------------------------

_PLAIN_KEY = re.compile(r"[\w-]+")
_MAX_LISTED = 15


def _key_path(path: tuple[Any, ...]) -> str:
    """`config.headers.X-Api-Key`, `config.items[0]`, `config["a.b"]`."""
    text = str(path[0])
    for part in path[1:]:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part) if isinstance(part, str) else part!r}]"
    return text


def _translate_or_none(source: str) -> str | None:
    try:
        return _compile(source).source
    except Exception:
        return None


def _syntax_problem(exc: Exception, *, expression: bool) -> str:
    if isinstance(exc, TemplateSyntaxError):
        if expression:
            return f"expression syntax error: {exc.message}"
        return f"template syntax error on line {exc.lineno}: {exc.message}"
    return str(exc)


def _template_error(
    prefix: str,
    exc: Exception,
    source: str | None,
    variables: Mapping[str, Any],
    *,
    expression: bool,
    **details: Any,
) -> TemplateError:
    """A TemplateError for `exc`, raised compiling or rendering `source` (translated)."""
    variable = None
    kind = "expression" if expression else "template"
    if isinstance(exc, TemplateSyntaxError | WholeDataError):
        problem = _syntax_problem(exc, expression=expression)
    elif isinstance(exc, SecurityError):
        problem = f"unsafe {kind}: {exc.message}"
    elif isinstance(exc, UndefinedError):
        found = _missing_reference(exc, source, variables, expression=expression)
        if found is None:
            problem = f"undefined value: {exc.message}"
        else:
            variable, reason = found
            problem = f'undefined variable "{variable}": {reason}'
    elif isinstance(exc, LimitError):
        problem = f"too large: {exc}"
    elif isinstance(exc, WorkError):
        problem = f"too much work: {exc}"
    else:
        problem = f"{kind} failed: {type(exc).__name__}: {exc}"
    if variable is not None:
        details["variable"] = variable
    return TemplateError(f"{prefix}: {problem}", **details)


def _missing_reference(
    exc: UndefinedError, source: str | None, variables: Mapping[str, Any], *, expression: bool
) -> tuple[str, str] | None:
    """The reference that is undefined, as written, and which part of it is missing."""
    if source is None:
        return None
    found: list[tuple[str, str, Any]] = []
    for parts in _references(source, expression):
        missing = _find_missing(parts, variables)
        if missing is not None:
            found.append((_reference_text(parts), *missing))
    if not found:
        return None
    # Among several missing, prefer the one Jinja complained about (`'resourceID' is undefined`).
    message = exc.message or ""
    for text, reason, part in found:
        if f"'{part}'" in message or message.endswith(f" {part}"):
            return text, reason
    return found[0][0], found[0][1]


@functools.lru_cache(maxsize=256)
def _references(source: str, expression: bool) -> tuple[tuple[Any, ...], ...]:
    """Every variable reference (`a.b[0].c`) in the source, skipping template-local names."""
    if expression:
        root: nodes.Node = Parser(ENV, source, state="variable").parse_expression()
    else:
        root = ENV.parse(source)
    local = {n.name for n in root.find_all(nodes.Name) if n.ctx in ("store", "param")}
    local |= {"loop", "caller", "varargs", "kwargs"}
    chains: list[tuple[Any, ...]] = []

    def visit(node: nodes.Node) -> None:
        if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
            chain = _chain(node)
            if chain is not None:
                if chain[0] not in local:
                    chains.append(chain)
                return
        for child in node.iter_child_nodes():
            visit(child)

    visit(root)
    return tuple(chains)


def _chain(node: nodes.Node) -> tuple[Any, ...] | None:
    parts: list[Any] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str | int)
        ):
            parts.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            parts.append(node.name)
            return tuple(reversed(parts))
        else:
            return None


def _find_missing(parts: tuple[Any, ...], variables: Mapping[str, Any]) -> tuple[str, Any] | None:
    """Why the reference is undefined, and the missing part; None when it resolves."""
    if parts[0] not in variables:
        if parts[0] in ENV.globals:
            return None
        return f'the data has no "{parts[0]}" ({_listing(variables)})', parts[0]
    current: Any = variables[parts[0]]
    for i, part in enumerate(parts[1:], 1):
        owner = _reference_text(parts[:i])
        if isinstance(current, Mapping):
            if part in current:
                current = current[part]
                continue
            if isinstance(part, str) and hasattr(current, part):
                return None  # a method, e.g. `.items()`
            return f'"{owner}" has no "{part}" ({_listing(current)})', part
        if isinstance(current, Sequence) and not isinstance(current, str) and isinstance(part, int):
            if -len(current) <= part < len(current):
                current = current[part]
                continue
            return f'"{owner}" has {len(current)} items, so no [{part}]', part
        if isinstance(part, str) and not part.startswith("_") and hasattr(current, part):
            return None
        if current is None:
            return f'"{owner}" is null, so it has no "{part}"', part
        return f'"{owner}" is a {type(current).__name__}, which has no "{part}"', part
    return None


def _reference_text(parts: tuple[Any, ...]) -> str:
    text = str(parts[0])
    for part in parts[1:]:
        if isinstance(part, str) and part.isidentifier():
            text += f".{part}"
        else:
            text += f"[{part!r}]"
    return text


def _listing(mapping: Mapping[Any, Any]) -> str:
    if not mapping:
        return "it is empty"
    names = sorted(str(k) for k in mapping if k != ENV_DATA)
    shown = ", ".join(names[:_MAX_LISTED])
    return f"it has: {shown}" + (
        f", and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    )
