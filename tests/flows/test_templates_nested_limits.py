"""Nested values: cheap to build from shared references, huge to print or copy. They are
refused by their full size, counted before the big value is made."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from mfo_client.flows._errors import TemplateError
from mfo_client.flows._expressions import evaluate
from mfo_client.flows._templates import render_config

DATA: dict[str, Any] = {"input": {"rows": [{"n": i, "name": f"row {i}"} for i in range(1000)]}}
PREFIX = 'flow "orders", task "notify", config.message: too large: '
NEST = "{% set s = 'x' * 1000 %}{% set a = [s] * 1000 %}"
"""`a` is a thousand references to one string of a thousand characters: a million characters."""
WIDE = "{% set s = 'x' * 1000 %}{% set a = [s, s, s, s, s, s, s, s, s, s] %}"
"""No `*` on lists: nested literals grow tenfold per level."""


def render(template: str) -> Any:
    config = {"message": template}
    return render_config(config, DATA, task_id="notify", flow="orders")["message"]


def refused(template: str) -> str:
    """The error message, checking the big value was never built (a few MB at most)."""
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as info:
            render(template)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    return str(info.value)


@pytest.mark.parametrize(
    ("template", "what"),
    [
        # One expression keeps its type: the value itself is copied out of the render.
        ("{{ [[['x' * 1000] * 1000] * 1000] }}", "the value"),
        ("{{ [[[['x' * 1000] * 1000] * 1000]] | first }}", "the value"),
        # Text: each value is counted before it is printed.
        (NEST + "{{ [a] * 1000 }}", "the value printed"),
        (NEST + "{{ [a, a] }}", "the value printed"),
        (WIDE + "{% set b = [a, a, a, a, a, a, a, a, a, a] %}{% set c = [b] * 100 %}{{ c }}", ""),
        (NEST + "{{ 'x' ~ [a, a] }}", "'~'"),
        (NEST + "{{ '%s' % ([a, a],) }}", "'%' formatting"),
        (NEST + "{{ '{}'.format([a, a]) }}", "'format'"),
        (NEST + "{{ [a, a] | tojson }}", "the filter 'tojson'"),
        (NEST + "{{ [a, a] | string }}", "the filter 'string'"),
        (NEST + "{{ [a, a] | upper }}", "the filter 'upper'"),
        (NEST + "{{ [a, a] | pprint }}", "the filter 'pprint'"),
        (NEST + "{{ [[a, a]] | join }}", "the filter 'join'"),
        (NEST + "{{ ([a] * 1000) | sum(start=[]) | length }}", "the filter 'sum'"),
    ],
)
def test_nested_values_are_refused_by_their_full_size(template: str, what: str) -> None:
    message = refused(template)
    assert message.startswith(PREFIX)
    assert "counting each nested value as often as it appears (the limit is 1048576)" in message
    if what:
        assert message.startswith(PREFIX + what + " would make at least ")


def test_a_when_or_for_each_giving_a_huge_nested_value_is_refused() -> None:
    with pytest.raises(TemplateError) as info:
        evaluate("[[['x' * 1000] * 1000] * 1000]", {}, where="tasks[t].for_each")
    assert str(info.value).startswith("tasks[t].for_each: too large: the value would make")


def test_refusing_counts_up_to_the_limit_not_the_whole_nested_size() -> None:
    # 10**15 characters: counting them all would never end.
    assert refused("{{ [[[[['x' * 1000] * 1000] * 1000] * 1000] * 1000] }}").startswith(PREFIX)
    assert refused(NEST + "{{ [[[a] * 1000] * 1000] * 1000 }}").startswith(PREFIX)


def test_real_data_and_ordinary_nesting_stay_within_the_limits() -> None:
    assert render("{{ input.rows }}") == DATA["input"]["rows"]
    assert render("{{ input.rows }}") is not DATA["input"]["rows"]  # a copy
    assert len(render("{{ input.rows | tojson }}")) > 20_000
    assert render(NEST + "{{ a | length }}") == "1000"  # text: the template is not one {{ }}
    assert len(render(NEST + "{{ a }}")) == 1000 * 1004  # "['x...x', 'x...x', ...]"
    assert render("{{ [[1, 2], [3]] | sum(start=[]) }}") == [1, 2, 3]
    assert render("{{ [[1, 2], {'a': 'b'}] }}") == [[1, 2], {"a": "b"}]
