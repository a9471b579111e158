"""Templates in task config: Go-style `{{.input.dataID}}` and Jinja2, rendered in a sandbox.

Flow files written for the Go engine use `{{.eventName}}`; inside `{{ }}` and `{% %}` a dot that
starts a reference is dropped, so the rest is plain Jinja2 (`{{ input.dataID | upper }}`). Each
distinct template is translated and compiled once (`_compile` is cached): rendering is on the hot
path. A string that is exactly one `{{ expression }}` renders to the value itself, typed; any
other template renders to text.

Everything runs in Jinja2's immutable sandbox with `StrictUndefined`: a missing variable is an
error naming its dotted path, never empty text; escapes (`''.__class__...`) fail as unsafe; and
results are bounded (`range` by the sandbox, `*`, `+`, `**` and the output here).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence, Set, ValuesView
from dataclasses import dataclass
from typing import Any, NoReturn

from jinja2 import StrictUndefined, Template, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mfo_client.flows._errors import TemplateError

__all__ = ["check_templates", "has_templates", "render_config"]

_MAX_OUTPUT = 1024 * 1024
"""Characters (or items) one template may produce; more is a runaway template, not a message."""
_MAX_POWER_BITS = 4096
_CACHE_SIZE = 2048


class _LimitError(Exception):
    """A template tried to build a value larger than the limits allow."""


class _WholeDataError(Exception):
    """`{{.}}`: Go's "the whole data", which a config value has no use for."""


_ABSENT: Any = object()


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "+", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Data first: `input.items` is the key "items", as in Go templates, not `dict.items`.
        if isinstance(obj, Mapping):
            value = obj.get(attribute, _ABSENT)
            if value is not _ABSENT:
                return value
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and right * abs(left).bit_length() > _MAX_POWER_BITS
            ):
                raise _LimitError(f"'**' would make a number of more than {_MAX_POWER_BITS} bits")
        elif operator == "*":
            for sized, times in ((left, right), (right, left)):
                if _is_sized(sized) and isinstance(times, int) and len(sized) * times > _MAX_OUTPUT:
                    raise _LimitError(_too_many("*", len(sized) * times))
        elif _is_sized(left) and _is_sized(right) and len(left) + len(right) > _MAX_OUTPUT:
            raise _LimitError(_too_many("+", len(left) + len(right)))
        return super().call_binop(context, operator, left, right)


def _too_many(operator: str, size: int) -> str:
    return f"'{operator}' would make {size} characters or items (the limit is {_MAX_OUTPUT})"


def _is_sized(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False)


# -- Go-style references ---------------------------------------------------------------------

_TAG_OPEN = re.compile(r"\{\{|\{%|\{#")
_RAW_BEGIN = re.compile(r"\{%-?\+?\s*raw\s*[-+]?%\}")
_RAW_END = re.compile(r"\{%-?\+?\s*endraw\s*[-+]?%\}")
_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?")
# Words after which an operand starts, so a following `.name` is a reference.
_KEYWORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "elif", "for", "recursive", "set", "with"}
    | {"print", "filter", "call", "macro", "as"}
)
_WHOLE_DATA = (
    '"." (the whole data) is not supported; name the value you need, '
    "e.g. {{.eventName}} or {{ input.dataID }}"
)


def _translate_template(source: str) -> str:
    """Jinja2 source for a template that may use Go-style `{{.name}}` references."""
    out: list[str] = []
    pos = 0
    while match := _TAG_OPEN.search(source, pos):
        start = match.start()
        out.append(source[pos:start])
        tag = match.group()
        if tag == "{#":
            stop = source.find("#}", start + 2)
            pos = len(source) if stop < 0 else stop + 2
            out.append(source[start:pos])
        elif tag == "{%" and (raw := _RAW_BEGIN.match(source, start)):
            end = _RAW_END.search(source, raw.end())
            pos = end.end() if end else len(source)
            out.append(source[start:pos])
        else:
            code, pos = _translate_code(source, start + 2, "}}" if tag == "{{" else "%}")
            out.append(tag + code)  # the closing delimiter is copied with the next text
    out.append(source[pos:])
    return "".join(out)


def _translate_expression(source: str) -> str:
    return _translate_code(source, 0, None)[0]


def _translate_code(source: str, pos: int, end: str | None) -> tuple[str, int]:
    """Translate code from `pos` to the `end` delimiter (outside brackets); the text and its end.

    A dot after an operand (a name, literal, `)` or `]`) is attribute access and stays; any other
    dot followed by a name starts a Go-style reference and is dropped. String literals are copied
    untouched.
    """
    out: list[str] = []
    operand = False  # the last token ends an operand: a dot now is attribute access
    attribute = False  # the last token is an attribute dot: a name now is no keyword
    depth = 0
    while pos < len(source):
        char = source[pos]
        if depth == 0 and end is not None and source.startswith(end, pos):
            break
        if char.isspace():
            out.append(char)
            pos += 1
            continue
        if char in "'\"":
            token, operand = source[pos : _string_end(source, pos)], True
        elif name := _NAME.match(source, pos):
            token = name.group()
            operand = attribute or token not in _KEYWORDS
        elif number := _NUMBER.match(source, pos):
            token, operand = number.group(), True
        elif char == "." and not operand:
            if _NAME.match(source, pos + 1):
                pos += 1
                attribute = False
                continue
            rest = source[pos + 1 :].lstrip()
            if not rest or rest[0] in ")],|" or (end is not None and rest.startswith(end)):
                raise _WholeDataError(_WHOLE_DATA)
            token = char
        else:
            token = char
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth = max(0, depth - 1)
            operand = char in ")]}"
            out.append(token)
            pos += 1
            attribute = char == "." and not operand
            continue
        out.append(token)
        pos += len(token)
        attribute = False
    return "".join(out), pos


def _string_end(source: str, pos: int) -> int:
    quote, pos = source[pos], pos + 1
    while pos < len(source):
        if source[pos] == "\\":
            pos += 2
        elif source[pos] == quote:
            return pos + 1
        else:
            pos += 1
    return len(source)


def _single_expression(source: str) -> str | None:
    """The expression inside a string that is exactly one `{{ ... }}`, untranslated."""
    text = source.strip()
    if not (text.startswith("{{") and text.endswith("}}")):
        return None
    stop = _translate_code(text, 2, "}}")[1]
    if stop != len(text) - 2:
        return None
    inner = text[2:stop]
    inner = inner[1:] if inner.startswith("-") else inner  # whitespace control, as in `{{- x -}}`
    return inner[:-1] if inner.endswith("-") else inner


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
    translated = _translate_template(source)
    template = _ENV.from_string(translated)
    expression = None
    if (inner := _single_expression(source)) is not None:
        # Valid as a template but not as one expression (`{{ a, b }}`): render it as text.
        with contextlib.suppress(TemplateSyntaxError):
            expression = _ENV.compile_expression(
                _translate_expression(inner), undefined_to_none=False
            )
    return _Compiled(translated, template, expression)


# -- Rendering -------------------------------------------------------------------------------


def has_templates(value: Any) -> bool:
    """Whether a config value holds a template string anywhere (values only, not keys)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(has_templates(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_templates(v) for v in value)
    return False


def render_config(
    config: Mapping[str, Any], variables: Mapping[str, Any], *, task_id: str, flow: str
) -> dict[str, Any]:
    """A copy of a task's config with every template string rendered against the run's data.

    Raises TemplateError naming the config key, task and flow, and for a missing variable its
    dotted path and which part of it is missing.
    """
    where = (task_id, flow)
    return {key: _render(value, variables, ("config", key), where) for key, value in config.items()}


def _render(
    value: Any, variables: Mapping[str, Any], path: tuple[Any, ...], where: tuple[str, str]
) -> Any:
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            return _render_string(value, variables, path, where)
        return value
    if isinstance(value, Mapping):
        return {k: _render(v, variables, (*path, k), where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_render(v, variables, (*path, i), where) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return _materialize(value)


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
        if size > _MAX_OUTPUT:
            raise _LimitError(
                f"the rendered text is longer than the limit of {_MAX_OUTPUT} characters"
            )
        chunks.append(chunk)
    return "".join(chunks)


def _materialize(value: Any) -> Any:
    """The value, with containers copied (the run's data stays untouched) and iterators listed.

    Fails on an undefined value anywhere inside, as rendering it to text would.
    """
    if isinstance(value, str):
        if len(value) > _MAX_OUTPUT:
            raise _LimitError(f"the value is longer than the limit of {_MAX_OUTPUT} characters")
        return value
    if isinstance(value, Undefined):
        _fail(value)
    if isinstance(value, Mapping):
        return {k: _materialize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_materialize(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_materialize(v) for v in value)
    if isinstance(value, Iterator | range | Set | ValuesView):
        return [_materialize(v) for v in value]
    return value


def _fail(value: Undefined) -> NoReturn:
    value._fail_with_undefined_error()


def check_templates(config: Mapping[str, Any]) -> list[str]:
    """Syntax problems of every template string in a task's config, one message each.

    Each names the config key (`config.url: template syntax error on line 1: ...`).
    """
    problems: list[str] = []

    def visit(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, str):
            if "{{" in value or "{%" in value:
                try:
                    _compile(value)
                except (TemplateSyntaxError, _WholeDataError) as exc:
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
    if isinstance(exc, TemplateSyntaxError | _WholeDataError):
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
    elif isinstance(exc, _LimitError):
        problem = f"too large: {exc}"
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
        root: nodes.Node = Parser(_ENV, source, state="variable").parse_expression()
    else:
        root = _ENV.parse(source)
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
        if parts[0] in _ENV.globals:
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
    names = sorted(str(k) for k in mapping)
    shown = ", ".join(names[:_MAX_LISTED])
    return f"it has: {shown}" + (
        f", and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    )
