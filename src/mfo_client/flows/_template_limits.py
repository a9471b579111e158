"""The sandbox every template renders in, bounded in size and work before the work is done.

Rendering runs on the event loop, where no timeout can interrupt it, so a runaway template must
be refused up front; see the "Limits" notes below for what is checked and how.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Set
from typing import Any

from jinja2 import (
    StrictUndefined,
    nodes,
    pass_context,
    pass_environment,
    pass_eval_context,
)
from jinja2.filters import FILTERS
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import _PassArg, generate_lorem_ipsum
from markupsafe import Markup

__all__ = ["ABSENT", "ENV", "MAX_OUTPUT", "LimitError", "WorkError", "check_deep", "too_deep"]

ABSENT: Any = object()


MAX_OUTPUT = 1024 * 1024
"""Characters (or items) one template may produce; more is a runaway template, not a message."""
_MAX_POWER_BITS = 4096
_MAX_WORK = 100_000
"""Steps one render may take: a loop iteration, a macro call, an item (or KiB of text) handed to a
filter or method. A step is roughly a microsecond, so a render stays well under a second."""
_MACRO_STEPS = 10
"""A macro call costs ten steps: it takes about as long as ten loop iterations."""
_MAX_JSON_INDENT = 32


class LimitError(Exception):
    """A template tried to build a value larger than the limits allow."""


class WorkError(Exception):
    """A template tried to do more work than one render may."""


# -- Limits ----------------------------------------------------------------------------------
#
# Rendering runs on the event loop, where no timeout can interrupt it, so every limit is checked
# before the work is done, never after:
# - size: whatever can make a value much larger than its inputs is checked against MAX_OUTPUT
#   first: `*`, `+`, `**`, `~`, `%` and `str.format` (each field's width and precision, and the
#   running total), the width-taking filters (center, indent, wordwrap, truncate, format, join,
#   replace, batch, tojson's indent) and string methods (center, ljust, rjust, zfill, expandtabs,
#   replace, join, translate; `int.to_bytes`), and `lipsum`.
# - work: each render's context carries a step counter. Every `for` loop's iterable is wrapped
#   (the parsed template is rewritten before code generation, `_Sandbox._generate`) so each
#   iteration costs a step; each macro call costs ten (recursion that branches); each filter
#   and method call costs the items, or KiB of text, handed to it. `range` stays the sandbox's
#   (at most 100,000 items) and costs nothing until something walks it.
# - nesting: `[[s] * 1000] * 1000` is a thousand references to one list of a thousand references
#   to one string: cheap to build, a billion characters to print or copy. So wherever a value
#   becomes text or is copied out of the render (`{{ }}` output, `~`, `%`, `str.format`, the
#   filters that turn their input into text, and the value a single-expression template gives,
#   see `_templates._materialize`), its size is counted first, each nested value as often as it
#   appears, and the count stops as soon as it passes MAX_OUTPUT: `check_deep`.


class _Context(Context):
    """A render's context, carrying the steps taken so far."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps = 0


def _charge(context: Context, steps: int, what: str) -> None:
    if not steps:
        return
    taken = getattr(context, "steps", 0) + steps
    if taken > _MAX_WORK:
        raise WorkError(
            f"{what} would take the render past {_MAX_WORK} steps (a step is a loop iteration, "
            "a tenth of a macro call, or an item or KiB of text handed to a filter or method)"
        )
    context.steps = taken  # type: ignore[attr-defined]


def _steps(value: Any) -> int:
    """What handing `value` to a filter or method costs."""
    if isinstance(value, str | bytes):
        return len(value) // 1024
    if isinstance(value, list | tuple | Mapping | Set | range):
        return len(value)
    return 0


def _at_least(what: str, size: int) -> str:
    return f"{what} would make at least {size} characters (the limit is {MAX_OUTPUT})"


def _check_size(what: str, size: int) -> None:
    if size > MAX_OUTPUT:
        raise LimitError(_at_least(what, size))


def too_deep(what: str, size: int) -> str:
    return (
        f"{what} would make at least {size} characters and items, counting each nested value "
        f"as often as it appears (the limit is {MAX_OUTPUT})"
    )


def deep_size(value: Any, limit: int = MAX_OUTPUT) -> int:
    """Characters (of strings, keys included) and items (of containers, and other values) that
    printing or copying `value` makes, a nested value counted each time it appears; the count
    stops once it passes `limit`, so it costs at most about `limit` steps."""
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            size += len(item)
        elif isinstance(item, Mapping):
            size += len(item)
            if size <= limit:
                stack += item.keys()
                stack += item.values()
        elif isinstance(item, list | tuple | Set):
            size += len(item)
            if size <= limit:
                stack += item
        else:
            size += 1
        if size > limit:
            break
    return size


def check_deep(what: str, value: Any, limit: int = MAX_OUTPUT) -> int:
    """`deep_size(value)`, or LimitError past `limit`; strings and scalars cost nothing."""
    if not isinstance(value, Mapping | list | tuple | Set):
        return len(value) if isinstance(value, str | bytes) else 1
    size = deep_size(value, limit)
    if size > limit:
        raise LimitError(too_deep(what, size))
    return size


_DIGITS = re.compile(r"\d+")


def _check_spec(what: str, spec: str) -> None:
    """Refuse a format spec whose width or precision passes the limit (`{:>300000000}`)."""
    for digits in _DIGITS.findall(spec):
        if len(digits) > 7 or int(digits) > MAX_OUTPUT:
            raise LimitError(_at_least(what, int(digits) if len(digits) < 20 else MAX_OUTPUT))


_PRINTF = re.compile(r"%(?:\(([^)]*)\))?([-#0 +]*)(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.?)", re.S)


class _Unchecked(Exception):
    """`%` formatting the check cannot follow; the real `%` will raise its own error."""


def _check_percent(fmt: str, values: Any) -> None:
    """Refuse `fmt % values` when the result would pass the limit, before building it.

    Formats one conversion at a time, each with its width and precision checked first, and
    stops once the running total passes the limit: a bounded buffer for `%`.
    """
    what = "'%' formatting"
    args = list(values) if isinstance(values, tuple) else [values]
    position = 0

    def take() -> Any:
        nonlocal position
        if position >= len(args):
            raise _Unchecked
        position += 1
        return args[position - 1]

    size, pos = 0, 0
    try:
        for match in _PRINTF.finditer(fmt):
            size += match.start() - pos
            pos = match.end()
            key, flags, width, precision, conversion = match.groups()
            if conversion == "%":
                size += 1
                continue
            spec = [width, precision]
            for i, part in enumerate(spec):
                if part == "*":
                    taken = take()
                    if not isinstance(taken, int):
                        raise _Unchecked
                    spec[i] = str(abs(taken))
                if spec[i]:
                    _check_spec(what, spec[i])
            if key is not None:
                if not isinstance(values, Mapping) or key not in values:
                    raise _Unchecked
                value = values[key]
            else:
                value = take()
            check_deep(what, value, MAX_OUTPUT - size)
            dot = "" if precision is None else "." + spec[1]
            size += len(f"%{flags}{spec[0] or ''}{dot}{conversion}" % (value,))
            _check_size(what, size)
        _check_size(what, size + len(fmt) - pos)
    except (_Unchecked, TypeError, ValueError, OverflowError):
        return


class _BoundedFormatter(SandboxedFormatter):
    """`str.format` that checks each field's spec before, and the running total after, it."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self._size = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec("'format'", format_spec)
        check_deep("'format'", value, MAX_OUTPUT - self._size)
        piece = super().format_field(value, format_spec)
        self._size += len(piece)
        _check_size("'format'", self._size)
        return piece


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _check_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call of a string (or int) method whose result would pass the limit."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    what = f"'{name}'"
    if isinstance(owner, str | bytes):
        if name in _WIDTH_METHODS and args and isinstance(args[0], int):
            _check_size(what, args[0])
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(tabsize, int):
                _check_size(
                    what,
                    len(owner) + _count(owner, "\t") * tabsize,
                )
        elif name == "replace" and len(args) >= 2:
            _check_replace(what, owner, args[0], args[1], args[2] if len(args) > 2 else -1)
        elif name == "join" and args:
            _check_join(what, owner, args[0])
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            _check_size(what, len(owner) * longest)
    elif isinstance(owner, int) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        if isinstance(length, int):
            _check_size(what, length)


def _check_replace(what: str, text: Any, old: Any, new: Any, count: Any) -> None:
    if not (
        isinstance(text, str | bytes)
        and isinstance(old, type(text))
        and isinstance(new, type(text))
    ):
        return
    found = _count(text, old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    _check_size(what, len(text) + found * (len(new) - len(old)))


def _count(text: Any, part: Any) -> int:
    """How often `part` (str, or the same as bytes) occurs in `text`, a str or bytes."""
    if isinstance(text, bytes) and isinstance(part, str):
        part = part.encode()
    return int(text.count(part))


def _check_join(what: str, separator: Any, items: Any) -> None:
    if not isinstance(items, list | tuple):
        return
    size = len(separator) * max(0, len(items) - 1)
    for item in items:
        _check_size(what, size)
        size += len(item) if isinstance(item, str | bytes) else 0
    _check_size(what, size)


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "+", "**", "%"})
    context_class = _Context

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Data first: `input.items` is the key "items", as in Go templates, not `dict.items`.
        if isinstance(obj, Mapping):
            value = obj.get(attribute, ABSENT)
            if value is not ABSENT:
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
                raise LimitError(f"'**' would make a number of more than {_MAX_POWER_BITS} bits")
        elif operator == "*":
            for sized, times in ((left, right), (right, left)):
                if _is_sized(sized) and isinstance(times, int) and len(sized) * times > MAX_OUTPUT:
                    raise LimitError(_too_many("*", len(sized) * times))
        elif operator == "%":
            if isinstance(left, str):
                _check_percent(left, right)
        elif _is_sized(left) and _is_sized(right) and len(left) + len(right) > MAX_OUTPUT:
            raise LimitError(_too_many("+", len(left) + len(right)))
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, Macro):
            _charge(context, _MACRO_STEPS, "calling a macro")
        else:
            owner = getattr(obj, "__self__", None)
            cost = _steps(owner) + sum(_steps(arg) for arg in args)
            _charge(context, cost, f"calling '{getattr(obj, '__name__', 'a function')}'")
            _check_method(obj, args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None or isinstance(value.__self__, Markup):
            return wrapped
        text: str = value.__self__
        is_format_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    return wrapped(*args, **kwargs)  # its TypeError
                return str(_BoundedFormatter(self).vformat(text, (), args[0]))
            return str(_BoundedFormatter(self).vformat(text, args, kwargs))

        return functools.update_wrapper(bounded, value)

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        _bound_tree(source)
        return super()._generate(source, name, filename, defer_init)


def _bound_tree(root: nodes.Template) -> None:
    """Make every `for` loop pay per iteration and every `~` check its size before joining."""
    for loop in list(root.find_all(nodes.For)):
        loop.iter = nodes.Filter(loop.iter, "_mfo_loop", [], [], None, None, lineno=loop.lineno)
    for concat in list(root.find_all(nodes.Concat)):
        parts = nodes.List(concat.nodes, lineno=concat.lineno)
        concat.nodes = [
            nodes.Filter(parts, "_mfo_concat", [], [], None, None, lineno=concat.lineno)
        ]


@pass_context
def _loop(context: Context, iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _charge(context, 1, "a for loop")
        yield item


@pass_context
def _concat(context: Context, parts: list[Any]) -> str:
    size = 0
    texts: list[str] = []
    for part in parts:
        check_deep("'~'", part, MAX_OUTPUT - size)
        text = str(part)
        size += len(text)
        _check_size("'~'", size)
        texts.append(text)
    return "".join(texts)


def _output(value: Any) -> Any:
    """What each `{{ }}` of a text template prints: bounded before it becomes text."""
    check_deep("the value printed", value)
    return value


def _too_many(operator: str, size: int) -> str:
    return f"'{operator}' would make {size} characters or items (the limit is {MAX_OUTPUT})"


def _is_sized(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


# Filters that only look at their input (or at its length) cost nothing.
_FREE_FILTERS = frozenset(
    {"abs", "attr", "count", "d", "default", "first", "float", "int", "length", "random", "round"}
    | {"safe"}
)


def _filter_center(value: Any, width: int = 80) -> str:
    if isinstance(width, int):
        _check_size("the filter 'center'", width)
    return str(_DEFAULT_FILTERS["center"](value, width))


def _filter_indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    indent = width if isinstance(width, int) else len(str(width))
    _check_size("the filter 'indent'", len(text) + indent * (text.count("\n") + 1))
    return str(_DEFAULT_FILTERS["indent"](s, width, first, blank))


@pass_environment
def _filter_wordwrap(
    environment: Any,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = str(s)
    if isinstance(width, int):
        _check_size("the filter 'wordwrap'", width)
        lines = min(len(text) + 1, 2 * len(text) // max(width, 1) + text.count("\n") + 1)
        wrap = environment.newline_sequence if wrapstring is None else str(wrapstring)
        _check_size("the filter 'wordwrap'", len(text) + len(wrap) * lines)
    return str(
        _DEFAULT_FILTERS["wordwrap"](
            environment, s, width, break_long_words, wrapstring, break_on_hyphens
        )
    )


@pass_environment
def _filter_truncate(environment: Any, s: Any, length: int = 255, *args: Any, **kwargs: Any) -> str:
    if isinstance(length, int):
        _check_size("the filter 'truncate'", length)
    return str(_DEFAULT_FILTERS["truncate"](environment, s, length, *args, **kwargs))


def _filter_format(value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        return str(_DEFAULT_FILTERS["format"](value, *args, **kwargs))  # its error
    _check_percent(str(value), kwargs or args)
    return str(_DEFAULT_FILTERS["format"](value, *args, **kwargs))


@pass_eval_context
def _filter_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(value)
    if attribute is not None:
        items = [eval_ctx.environment.getitem(item, attribute) for item in items]
    size = len(str(d)) * max(0, len(items) - 1)
    for item in items:
        _check_size("the filter 'join'", size)
        if isinstance(item, str):
            size += len(item)
        else:
            check_deep("the filter 'join'", item, MAX_OUTPUT - size)
            size += len(str(item))
    _check_size("the filter 'join'", size)
    return str(_DEFAULT_FILTERS["join"](eval_ctx, items, d))


@pass_eval_context
def _filter_replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> str:
    _check_replace("the filter 'replace'", str(s), str(old), str(new), count)
    return str(_DEFAULT_FILTERS["replace"](eval_ctx, s, old, new, count))


def _filter_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    if isinstance(linecount, int):
        _check_size("the filter 'batch'", linecount)
    return _DEFAULT_FILTERS["batch"](value, linecount, fill_with)


@pass_context
def _filter_slice(context: Context, value: Any, slices: int, fill_with: Any = None) -> Any:
    if isinstance(slices, int):
        _charge(context, slices, "the filter 'slice'")
    return _DEFAULT_FILTERS["slice"](value, slices, fill_with)


@pass_eval_context
def _filter_tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Any:
    size = indent if isinstance(indent, int) else len(indent) if isinstance(indent, str) else 0
    if size > _MAX_JSON_INDENT:
        raise LimitError(f"the filter 'tojson' takes an indent of at most {_MAX_JSON_INDENT}")
    check_deep("the filter 'tojson'", value)
    return _DEFAULT_FILTERS["tojson"](eval_ctx, value, indent)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if isinstance(n, int) and isinstance(max, int):
        _check_size("'lipsum'", n * max * 10)
    return generate_lorem_ipsum(n, html, min, max)


def _charged(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The filter, charging the render for the input it is handed."""
    passes = _PassArg.from_obj(func)

    deep = name in _TEXT_FILTERS

    @pass_context
    def filter_(context: Context, value: Any, /, *args: Any, **kwargs: Any) -> Any:
        _charge(context, _steps(value), f"the filter '{name}'")
        if deep:
            check_deep(f"the filter '{name}'", value)
        if passes is _PassArg.context:
            return func(context, value, *args, **kwargs)
        if passes is _PassArg.eval_context:
            return func(context.eval_ctx, value, *args, **kwargs)
        if passes is _PassArg.environment:
            return func(context.environment, value, *args, **kwargs)
        return func(value, *args, **kwargs)

    # Not `__dict__`: it holds the wrapped filter's `jinja_pass_arg`, which would replace ours.
    return functools.update_wrapper(filter_, func, updated=())


_TEXT_FILTERS = frozenset(
    {"capitalize", "e", "escape", "forceescape", "lower", "pprint", "string", "striptags"}
    | {"sum", "title", "trim", "upper", "urlencode", "urlize", "wordcount", "xmlattr"}
    | {"center", "format", "indent", "replace", "truncate", "wordwrap"}
)
"""Filters that turn their whole input into text (or, `sum`, concatenate nested lists): a
nested input is refused by its full size (see `check_deep`)."""

_DEFAULT_FILTERS: dict[str, Callable[..., Any]] = dict(FILTERS)
_BOUNDED_FILTERS: dict[str, Callable[..., Any]] = {
    "batch": _filter_batch,
    "center": _filter_center,
    "format": _filter_format,
    "indent": _filter_indent,
    "join": _filter_join,
    "replace": _filter_replace,
    "slice": _filter_slice,
    "tojson": _filter_tojson,
    "truncate": _filter_truncate,
    "wordwrap": _filter_wordwrap,
}


def _make_env() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, finalize=_output)
    for name, func in list(env.filters.items()):
        func = _BOUNDED_FILTERS.get(name, func)
        env.filters[name] = func if name in _FREE_FILTERS else _charged(name, func)
    env.filters["_mfo_loop"] = _loop
    env.filters["_mfo_concat"] = _concat
    env.globals["lipsum"] = _lipsum
    return env


ENV = _make_env()
