"""`when:` conditions: one Jinja2 expression over the run's data, in the templates' sandbox.

`payload.ref == 'refs/heads/main'`, `input.count > 3 and eventName != 'x'`, Go-style
`.eventName == 'a'`, and the same wrapped in `{{ }}` all work. A missing variable is an error
naming it (test for it with `x is defined`, or give a fallback with `x | default(...)`).

`reads` tells which top-level names an expression uses: a `when:` on a `for_each` task that
reads `item` or `index` is evaluated per item (see the executor).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateSyntaxError

from mfo_client.flows._errors import TemplateError
from mfo_client.flows._template_go import (
    WholeDataError,
    single_expression,
    translate_expression,
)
from mfo_client.flows._template_limits import ENV
from mfo_client.flows._templates import (
    _materialize,
    _references,
    _syntax_problem,
    _template_error,
)

__all__ = ["check_expression", "evaluate", "is_true", "reads"]

_EMPTY = "the expression is empty; write a condition, e.g. input.count > 3"


class _EmptyError(Exception):
    pass


@functools.lru_cache(maxsize=1024)
def _compile(expression: str) -> tuple[str, TemplateExpression]:
    """The translated source and its compiled form, once per distinct expression."""
    inner = single_expression(expression)
    translated = translate_expression(expression if inner is None else inner)
    if not translated.strip():
        raise _EmptyError(_EMPTY)
    return translated, ENV.compile_expression(translated, undefined_to_none=False)


def check_expression(expression: str) -> str | None:
    """The syntax problem of an expression, or None when it compiles."""
    try:
        _compile(expression)
    except (TemplateSyntaxError, WholeDataError, _EmptyError) as exc:
        return _syntax_problem(exc, expression=True)
    return None


@functools.lru_cache(maxsize=1024)
def reads(expression: str) -> frozenset[str]:
    """The top-level names the expression reads (`input`, `item`), empty when it does not
    compile (evaluating it then says why)."""
    try:
        translated, _ = _compile(expression)
        return frozenset(str(chain[0]) for chain in _references(translated, True))
    except (TemplateSyntaxError, WholeDataError, _EmptyError):
        return frozenset()


def evaluate(expression: str, variables: Mapping[str, Any], *, where: str) -> Any:
    """The expression's value over `variables`; TemplateError names `where` on any failure.

    `where` locates the expression for messages, e.g. `tasks[deploy].when`.
    """
    try:
        translated, compiled = _compile(expression)
    except (TemplateSyntaxError, WholeDataError, _EmptyError) as exc:
        problem = _syntax_problem(exc, expression=True)
        raise TemplateError(f"{where}: {problem}", where=where) from exc
    try:
        return _materialize(compiled(variables))
    except Exception as exc:
        raise _template_error(
            where, exc, translated, variables, expression=True, where=where
        ) from exc


def is_true(expression: str, variables: Mapping[str, Any], *, where: str) -> bool:
    """Whether a condition holds (Python truth: false, 0, "", [], {} and none are false)."""
    return bool(evaluate(expression, variables, where=where))
