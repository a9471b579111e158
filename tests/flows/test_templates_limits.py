"""Template limits: runaway sizes and work are refused before they are built or done."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest

from mfo_client.flows._errors import TemplateError
from mfo_client.flows._templates import render_config

DATA: dict[str, Any] = {"input": {"width": 300_000_000, "items": [1, 2], "name": "ab"}}
PREFIX = 'flow "orders", task "notify", config.message: '
STEPS = (
    "would take the render past 100000 steps (a step is a loop iteration, a tenth of a macro "
    "call, or an item or KiB of text handed to a filter or method)"
)


def render(template: str) -> Any:
    config = {"message": template}
    return render_config(config, DATA, task_id="notify", flow="orders")["message"]


def refused(template: str) -> str:
    """The error message, checking the big value was never built (peak memory of a few MB)."""
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as info:
            render(template)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    assert info.value.details["key"] == "config.message"
    assert info.value.details["task"] == "notify"
    assert info.value.details["flow"] == "orders"
    return str(info.value)


def at_least(what: str, size: int) -> str:
    return f"too large: {what} would make at least {size} characters (the limit is 1048576)"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ '%0300000000d' % 1 }}", at_least("'%' formatting", 300_000_000)),
        ("{{ '%.300000000f' % 1.0 }}", at_least("'%' formatting", 300_000_000)),
        ("{{ '%*d' % (300000000, 1) }}", at_least("'%' formatting", 300_000_000)),
        ("{{ ('%s' * 2000) % (('x' * 1000,) * 2000) }}", at_least("'%' formatting", 1_049_000)),
        ("{{ '%300000000s' | format('x') }}", at_least("'%' formatting", 300_000_000)),
        ("{{ '{:>300000000}'.format('x') }}", at_least("'format'", 300_000_000)),
        ("{{ '{:>{}}'.format('x', 300000000) }}", at_least("'format'", 300_000_000)),
        ("{{ '{x:.300000000}'.format_map({'x': 1.0}) }}", at_least("'format'", 300_000_000)),
        ("{{ 'x' | center(300000000) }}", at_least("the filter 'center'", 300_000_000)),
        ("{{ 'x' | center(input.width) }}", at_least("the filter 'center'", 300_000_000)),
        ("{{ 'x' | indent(300000000) }}", at_least("the filter 'indent'", 300_000_001)),
        ("{{ 'x' | wordwrap(300000000) }}", at_least("the filter 'wordwrap'", 300_000_000)),
        ("{{ 'x' | truncate(300000000) }}", at_least("the filter 'truncate'", 300_000_000)),
        ("{{ [1] | batch(300000000, 0) | list }}", at_least("the filter 'batch'", 300_000_000)),
        (
            "{{ ('x' * 1000000) | replace('', 'yy') | length }}",
            at_least("the filter 'replace'", 3_000_002),
        ),
        ("{{ (['x' * 1000000] * 1000) | join }}", at_least("the filter 'join'", 2_000_000)),
        ("{{ 'x'.ljust(input.width) }}", at_least("'ljust'", 300_000_000)),
        ("{{ '\t'.expandtabs(300000000) }}", at_least("'expandtabs'", 300_000_001)),
        ("{{ ', '.join(['x' * 1000000] * 2) }}", at_least("'join'", 2_000_002)),
        ("{{ (1).to_bytes(300000000, 'big') }}", at_least("'to_bytes'", 300_000_000)),
        ("{{ lipsum(1000000) }}", at_least("'lipsum'", 1_000_000_000)),
        (
            "{% set ns = namespace(s='xxxxxxxxxx') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            at_least("'~'", 1_310_720),
        ),
        (
            "{{ input | tojson(100000000) }}",
            "too large: the filter 'tojson' takes an indent of at most 32",
        ),
    ],
)
def test_oversized_results_are_refused_before_they_are_built(template: str, message: str) -> None:
    assert refused(template) == PREFIX + message


@pytest.mark.parametrize(
    ("template", "what"),
    [
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "a for loop",
        ),
        ("{% for i in range(1000) %}{{ range(100000) | sum }}{% endfor %}", "the filter 'sum'"),
        (
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(40) }}",
            "calling a macro",
        ),
        ("{{ [1] | slice(300000000) | list }}", "the filter 'slice'"),
    ],
)
def test_runaway_work_is_refused(template: str, what: str) -> None:
    message = refused(template)
    assert message.startswith(PREFIX + "too much work: " + what)
    assert message.endswith(STEPS)


def test_ordinary_templates_stay_within_the_limits() -> None:
    assert render("{% for i in range(100000) %}{% endfor %}ok") == "ok"
    assert render("{{ range(100000) | length }}") == 100000
    assert render("{{ input.items | join(', ') }}") == "1, 2"
    assert render("{{ input.name | upper | center(6) }}") == "  AB  "
    assert render("{{ '%05d|%s' % (42, input.name) }}") == "00042|ab"
    assert render("{{ '%(a)s' % {'a': 1} }}") == "1"
    assert render("{{ '%s' | format(input.name) }}") == "ab"
    assert render("{{ '{:>4}|{n}'.format(1, n=2) }}") == "   1|2"
    assert render("{{ '{a}'.format_map({'a': 3}) }}") == "3"
    assert render("{{ input.name ~ '-' ~ 3 }}") == "ab-3"
    assert render("{{ 'a\nb' | indent(2, first=True) }}") == "  a\n  b"
    assert render("{{ 'aaaa bbbb' | wordwrap(4) }}") == "aaaa\nbbbb"
    assert render("{{ 'abcdefgh' | truncate(5, leeway=0) }}") == "ab..."
    assert render("{{ 'a.b' | replace('.', '::') }}") == "a::b"
    assert render("{{ input.items | tojson(2) }}") == "[\n  1,\n  2\n]"
    assert render("{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(1) }}{{ m(2) }}") == "<1><2>"


def test_percent_formatting_errors_are_python_s() -> None:
    assert str(refused("{{ '%s %s' % (1,) }}")) == (
        PREFIX + "template failed: TypeError: not enough arguments for format string"
    )
