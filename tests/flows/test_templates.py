"""Config templates: Go-style and Jinja2 references, typed values, clear errors, the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from mfo_client.flows._errors import TaskError, TemplateError
from mfo_client.flows._template_go import translate_template
from mfo_client.flows._templates import _compile, check_templates, has_templates, render_config

DATA: dict[str, Any] = {
    "eventName": "user.created",
    "userID": "u-1042",
    "input": {"dataID": "d-77", "items": [{"id": 1}, {"id": 2}], "count": 2},
    "fetch_data": {"status": 200, "body": {"name": "Ada", "tags": ["a", "b"]}},
    "store_data_mfo": {"resourceID": "res-9f3", "status": "stored"},
}


def render(config: dict[str, Any], data: dict[str, Any] | None = None) -> dict[str, Any]:
    return render_config(config, DATA if data is None else data, task_id="notify", flow="orders")


def error(template: str, data: dict[str, Any] | None = None) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        render({"message_template": template}, data)
    return info.value


PREFIX = 'flow "orders", task "notify", config.message_template: '


def test_the_seed_templates_render_unchanged() -> None:
    config = {
        "message_template": "Event {{.eventName}} received for user {{.userID}}.",
        "url": "https://api.external.com/data/{{.input.dataID}}",
        "message": "Data stored. New resource ID: {{.store_data_mfo.resourceID}}",
        "method": "GET",
    }
    assert render(config) == {
        "message_template": "Event user.created received for user u-1042.",
        "url": "https://api.external.com/data/d-77",
        "message": "Data stored. New resource ID: res-9f3",
        "method": "GET",
    }


def test_one_expression_renders_to_the_typed_value() -> None:
    config = {
        "id": "{{ .store_data_mfo.resourceID }}",
        "body": "{{.fetch_data.body}}",
        "status": "  {{ fetch_data.status }}  ",
        "items": "{{- input.items -}}",
        "count": "{{ input.items | length }}",
        "ids": "{{ input.items | map(attribute='id') }}",
        "text": "{{ fetch_data.status }} OK",
    }
    assert render(config) == {
        "id": "res-9f3",
        "body": {"name": "Ada", "tags": ["a", "b"]},
        "status": 200,
        "items": [{"id": 1}, {"id": 2}],
        "count": 2,
        "ids": [1, 2],
        "text": "200 OK",
    }


def test_typed_values_are_copies_and_the_config_is_not_touched() -> None:
    config = {"body": "{{ fetch_data.body }}", "nested": {"list": ["{{ .userID }}", 3, None]}}
    rendered = render(config)
    rendered["body"]["tags"].append("c")
    assert DATA["fetch_data"]["body"]["tags"] == ["a", "b"]
    assert rendered["nested"] == {"list": ["u-1042", 3, None]}
    assert config["nested"] == {"list": ["{{ .userID }}", 3, None]}


def test_jinja_filters_and_operators() -> None:
    config = {
        "upper": "{{ input.dataID | upper }}",
        "joined": "{{ eventName ~ '-' ~ userID }}",
        "default": "{{ input.missing | default('none') }}",
        "defined": "{% if input.missing is defined %}yes{% else %}no{% endif %}",
        "loop": "{% for item in .input.items %}<{{ item.id }}>{% endfor %}",
        "tags": "tags: {{ fetch_data.body.tags | join(', ') }}",
        "math": "{{ input.count * 10 + 1 }}",
    }
    assert render(config) == {
        "upper": "D-77",
        "joined": "user.created-u-1042",
        "default": "none",
        "defined": "no",
        "loop": "<1><2>",
        "tags": "tags: a, b",
        "math": 21,
    }


def test_keys_win_over_dict_methods() -> None:
    data = {"input": {"items": [1], "keys": "k"}}
    assert render({"a": "{{ .input.items }}", "b": "{{ input.keys }}"}, data) == {
        "a": [1],
        "b": "k",
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{.a}}", "{{a}}"),
        ("{{ .a.b[0].c }}", "{{ a.b[0].c }}"),
        ("{{ (.a) | f(.b, x=.c) }}", "{{ (a) | f(b, x=c) }}"),
        ("{{ .a ~ .b }}{{-.c-}}", "{{ a ~ b }}{{-c-}}"),
        ("{{ .a if not .b else .c }}", "{{ a if not b else c }}"),
        ("{{ [.a, {'k': .b}] }}", "{{ [a, {'k': b}] }}"),
        ("{% for i in .items %}{{ i.x }}{% endfor %}", "{% for i in items %}{{ i.x }}{% endfor %}"),
        (
            "{{ f(x).y }} {{ m[0].z }} {{ 'a'.upper() }}",
            "{{ f(x).y }} {{ m[0].z }} {{ 'a'.upper() }}",
        ),
        (
            '{{ "a.b" }} {{ \'.x\' }} {{ "it\'s .y" ~ .z }}',
            '{{ "a.b" }} {{ \'.x\' }} {{ "it\'s .y" ~ z }}',
        ),
        (
            "text .a {# .b #} {% raw %}{{ .c }}{% endraw %}",
            "text .a {# .b #} {% raw %}{{ .c }}{% endraw %}",
        ),
        ("{{ {'a': {'b': .c}} }}.d", "{{ {'a': {'b': c}} }}.d"),
        ("{{ 1.5 }} {{ items.0.id }}", "{{ 1.5 }} {{ items.0.id }}"),
    ],
)
def test_go_style_references_are_translated(source: str, expected: str) -> None:
    assert translate_template(source) == expected


def test_dots_inside_string_literals_are_untouched() -> None:
    assert render({"a": '{{ "a.b" }}', "b": "{{ '.x' }}", "c": "x{{ '.y' ~ .userID }}"}) == {
        "a": "a.b",
        "b": ".x",
        "c": "x.yu-1042",
    }


def test_each_template_is_compiled_once() -> None:
    _compile.cache_clear()
    config = {"a": "{{ .userID }}", "b": "{{ .userID }}", "c": "id {{ .userID }}"}
    for _ in range(3):
        render(config)
    info = _compile.cache_info()
    assert (info.misses, info.hits) == (2, 7)


def test_a_missing_top_level_variable_is_an_error_naming_it() -> None:
    exc = error("Event {{.eventNme}} received")
    assert str(exc) == (
        PREFIX + 'undefined variable "eventNme": the data has no "eventNme" '
        "(it has: eventName, fetch_data, input, store_data_mfo, userID)"
    )
    assert isinstance(exc, TaskError)
    assert exc.details == {
        "flow": "orders",
        "task": "notify",
        "key": "config.message_template",
        "variable": "eventNme",
    }


def test_a_missing_nested_variable_names_the_part_that_is_missing() -> None:
    exc = error("New resource ID: {{.store_data_mfo.resourceId}}")
    assert str(exc) == (
        PREFIX + 'undefined variable "store_data_mfo.resourceId": '
        '"store_data_mfo" has no "resourceId" (it has: resourceID, status)'
    )
    exc = error("{{ store_data_mfo.resourceID.value | upper }}")
    assert str(exc) == (
        PREFIX + 'undefined variable "store_data_mfo.resourceID.value": '
        '"store_data_mfo.resourceID" is a str, which has no "value"'
    )
    exc = error("{{ input.items[5].id }}")
    assert str(exc) == (
        PREFIX + 'undefined variable "input.items[5].id": "input.items" has 2 items, so no [5]'
    )
    exc = error("{{ .missing.x }}", {"missing": None})
    assert (
        str(exc) == PREFIX + 'undefined variable "missing.x": "missing" is null, so it has no "x"'
    )


def test_the_missing_variable_in_a_nested_key_is_located() -> None:
    with pytest.raises(TemplateError) as info:
        render({"headers": {"X-Request-Id": "{{ .requestID }}"}, "items": ["ok", "{{ .nope }}"]})
    assert str(info.value).startswith(
        'flow "orders", task "notify", config.headers.X-Request-Id: undefined variable "requestID"'
    )
    with pytest.raises(TemplateError) as info:
        render({"items": ["ok", "{{ .nope }}"]})
    assert str(info.value).startswith(
        'flow "orders", task "notify", config.items[1]: undefined variable "nope"'
    )


def test_a_missing_value_inside_a_typed_value_is_an_error() -> None:
    exc = error("{{ [userID, nope] }}")
    assert str(exc).startswith(PREFIX + 'undefined variable "nope"')


def test_of_several_missing_variables_the_one_that_failed_is_named() -> None:
    exc = error("{% if other is defined %}{{ other }}{% endif %}{{ .input.nope }}")
    assert exc.details["variable"] == "input.nope"


def test_an_undefined_value_that_is_no_variable_is_still_explained() -> None:
    exc = error("{% for i in input.items %}{{ i.name }}{% endfor %}")
    assert str(exc) == PREFIX + "undefined value: 'dict object' has no attribute 'name'"


def test_syntax_errors_name_the_key_line_and_jinja_message() -> None:
    exc = error("first line\n{{ .userID + }}")
    assert str(exc) == (
        PREFIX + "template syntax error on line 2: unexpected 'end of print statement'"
    )
    exc = error("{{ userID | nosuch }}")
    assert str(exc) == PREFIX + "template syntax error on line 1: No filter named 'nosuch'."


def test_the_whole_data_is_refused() -> None:
    assert str(error("{{.}}")) == PREFIX + (
        '"." (the whole data) is not supported; name the value you need, '
        "e.g. {{.eventName}} or {{ input.dataID }}"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "access to attribute '__class__' of 'str' object is unsafe.",
        ),
        (
            "{{ cycler.__init__.__globals__ }}",
            "access to attribute '__init__' of 'type' object is unsafe.",
        ),
        (
            "x {{ ''.__class__.__mro__[1].__subclasses__() }}",
            "access to attribute '__class__' of 'str' object is unsafe.",
        ),
        (
            "{{ input.items.append(3) }}",
            "access to attribute 'append' of 'list' object is unsafe.",
        ),
        (
            "{{ '{0.__class__}'.format(userID) }}",
            "access to attribute '__class__' of 'str' object is unsafe.",
        ),
    ],
)
def test_sandbox_escapes_fail_as_unsafe(template: str, message: str) -> None:
    assert str(error(template)) == PREFIX + "unsafe template: " + message
    assert DATA["input"]["items"] == [{"id": 1}, {"id": 2}]


def test_huge_ranges_are_refused_by_the_sandbox() -> None:
    assert render({"n": "{{ range(100000) | length }}"}) == {"n": 100000}
    assert str(error("{{ range(100001) | length }}")) == PREFIX + (
        "template failed: OverflowError: Range too big. "
        "The sandbox blocks ranges larger than MAX_RANGE (100000)."
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ 'ab' * 600000 }}",
            "'*' would make 1200000 characters or items (the limit is 1048576)",
        ),
        (
            "x{{ [0] * 2000000 }}",
            "'*' would make 2000000 characters or items (the limit is 1048576)",
        ),
        ("{{ 2 ** 100000 }}", "'**' would make a number of more than 4096 bits"),
        (
            "{% for i in range(100000) %}0123456789A{% endfor %}",
            "the rendered text is longer than the limit of 1048576 characters",
        ),
    ],
)
def test_output_is_bounded(template: str, message: str) -> None:
    assert str(error(template)) == PREFIX + "too large: " + message


def test_other_failures_are_template_errors() -> None:
    assert str(error("{{ input.count / 0 }}")) == (
        PREFIX + "template failed: ZeroDivisionError: division by zero"
    )


def test_check_templates_names_each_broken_key() -> None:
    config = {
        "url": "https://x/{{ .input.dataID",
        "ok": "{{ .input.dataID }} and {{ nothing_checked_at_build_time }}",
        "headers": {"A": ["plain", "{% if %}"]},
        "whole": "{{ . }}",
        "number": 3,
    }
    assert check_templates(config) == [
        "config.url: template syntax error on line 1: unexpected end of template, "
        "expected 'end of print statement'.",
        "config.headers.A[1]: template syntax error on line 1: Expected an expression, "
        "got 'end of statement block'",
        'config.whole: "." (the whole data) is not supported; name the value you need, '
        "e.g. {{.eventName}} or {{ input.dataID }}",
    ]
    assert check_templates({"a": "{{ x }}", "b": ["{% if y %}z{% endif %}"]}) == []


def test_has_templates() -> None:
    assert has_templates({"a": [1, {"b": "x {{ y }}"}]})
    assert has_templates("{% if x %}{% endif %}")
    assert not has_templates({"{{ key }}": "plain", "n": [1, None, "a { b }"]})
