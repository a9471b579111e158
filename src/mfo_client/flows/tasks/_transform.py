"""`data_transform_task`: reshape data with JMESPath, dotted paths, or a named rule set.

The input is `source` (a dotted path into the run's data) when given, else the upstream data:
with one dependency, that task's outputs (a previous `http_get_task`'s response is at `body`);
with several, their outputs by task id; with none, the run's initial input. Exactly one of
`expressions`, `mapping`, `expression` and `transformation_rule` says what to do; the result is
the output `output`.

Rule sets: the built-in `ruleset_v1` passes the fetched data through (the input's `body` when
it has one, else the input unchanged). More come from the settings of the run
(`transformation_rules`: name -> `{expressions: {...}}` or `{expression: ...}`); a rule set
there with a built-in's name replaces the built-in, so a deployment can redefine it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Self

import jmespath
from jmespath.exceptions import (
    IncompleteExpressionError,
    JMESPathError,
    LexerError,
    ParseError,
)
from pydantic import AfterValidator, Field, model_validator

from mfo_client.flows._context import MISSING, FlowContext, lookup
from mfo_client.flows._errors import TaskError
from mfo_client.flows._registry import TaskCallable
from mfo_client.flows.tasks._common import TaskConfig, is_templated, upstream_data, validate

__all__ = ["BUILTIN_RULES", "DataTransformConfig", "TransformationRule", "build_data_transform"]


def _check_jmespath(text: str) -> str:
    if not is_templated(text):
        try:
            jmespath.compile(text)
        except ParseError as exc:
            raise ValueError(_describe_parse_error(text, exc)) from None
    return text


def _describe_parse_error(text: str, exc: ParseError) -> str:
    if isinstance(exc, IncompleteExpressionError):
        reason = "incomplete expression"
    else:
        message = str(exc.message if isinstance(exc, LexerError) else exc.msg)
        reason = f"{message[:1].lower()}{message[1:]} at column {exc.lex_position + 1}"
    return f'not a valid JMESPath expression: "{text}" ({reason})'


JMESPathText = Annotated[str, Field(min_length=1), AfterValidator(_check_jmespath)]
"""A JMESPath expression, compiled when validated so a typo fails when the flow is built."""


def _one_of(model: TaskConfig, names: tuple[str, ...], required: bool) -> None:
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(names)}; got {', '.join(given)}")
    if required and not given:
        raise ValueError(f"one of {', '.join(names)} is required")


class TransformationRule(TaskConfig):
    """A named rule set from the settings: `expressions` or `expression`."""

    expressions: dict[str, JMESPathText] | None = None
    expression: JMESPathText | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        _one_of(self, ("expressions", "expression"), required=True)
        return self


class DataTransformConfig(TaskConfig):
    source: str | None = Field(default=None, min_length=1)
    """A dotted path into the run's data (`input.items`, `fetch.body.data`)."""
    expressions: dict[str, JMESPathText] | None = None
    """Output key -> JMESPath over the input; `output` is the resulting mapping."""
    mapping: dict[str, str] | None = None
    """Output key -> dotted path into the input (missing paths give null)."""
    expression: JMESPathText | None = None
    transformation_rule: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        names = ("expressions", "mapping", "expression", "transformation_rule")
        _one_of(self, names, required=True)
        return self


def _passthrough_v1(data: Any) -> Any:
    return data["body"] if isinstance(data, Mapping) and "body" in data else data


BUILTIN_RULES: Mapping[str, Callable[[Any], Any]] = {"ruleset_v1": _passthrough_v1}
"""Rule sets every run knows, by name."""


def build_data_transform(cfg: DataTransformConfig) -> TaskCallable:
    def run(ctx: FlowContext) -> dict[str, Any]:
        data = _input(ctx, cfg.source)
        if cfg.expressions is not None:
            output: Any = _search_all(cfg.expressions, data)
        elif cfg.mapping is not None:
            output = {key: _at(data, path) for key, path in cfg.mapping.items()}
        elif cfg.expression is not None:
            output = _search(cfg.expression, data)
        else:
            output = _apply_rule(ctx, str(cfg.transformation_rule), data)
        return {"output": output}

    return run


def _input(ctx: FlowContext, source: str | None) -> Any:
    if source is None:
        return upstream_data(ctx)
    value = ctx.get(source, MISSING)
    if value is MISSING:
        raise TaskError(f'source "{source}" is not in the run\'s data', source=source)
    return value


def _at(data: Any, path: str) -> Any:
    # `lookup` starts from a mapping; wrapping the input lets a list be the root too.
    return lookup({"$": data}, f"$.{path}", None)


def _search(expression: str, data: Any) -> Any:
    try:
        return jmespath.search(expression, data)
    except JMESPathError as exc:
        message = " ".join(str(exc).split())
        raise TaskError(f'JMESPath expression "{expression}" failed: {message}') from exc


def _search_all(expressions: Mapping[str, str], data: Any) -> dict[str, Any]:
    return {key: _search(expression, data) for key, expression in expressions.items()}


def _apply_rule(ctx: FlowContext, name: str, data: Any) -> Any:
    configured = ctx.clients.settings.get("transformation_rules") or {}
    if name in configured:
        rule = validate(TransformationRule, configured[name], f'transformation rule "{name}"')
        if rule.expressions is not None:
            return _search_all(rule.expressions, data)
        return _search(str(rule.expression), data)
    if name in BUILTIN_RULES:
        return BUILTIN_RULES[name](data)
    known = sorted({*BUILTIN_RULES, *configured})
    raise TaskError(
        f'unknown transformation rule "{name}"; known rules: {", ".join(known)} '
        "(define more under transformation_rules in the task settings)",
        rule=name,
    )
