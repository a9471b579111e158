"""`when:` conditions: true, false, Go-style, missing variables, syntax, the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from mfo_client.flows._errors import TemplateError
from mfo_client.flows._expressions import check_expression, evaluate, is_true

DATA: dict[str, Any] = {
    "eventName": "push",
    "payload": {"ref": "refs/heads/main", "commits": [{"id": "c1"}, {"id": "c2"}]},
    "input": {"count": 5},
    "flag": False,
}
WHERE = "tasks[deploy].when"


def fails(expression: str) -> str:
    with pytest.raises(TemplateError) as info:
        evaluate(expression, DATA, where=WHERE)
    return str(info.value)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("payload.ref == 'refs/heads/main'", True),
        ("payload.ref == 'refs/heads/dev'", False),
        ("input.count > 3 and eventName != 'x'", True),
        ("input.count > 5 or eventName == 'pull'", False),
        (".eventName == 'push'", True),
        ("not .flag and .payload.ref.startswith('refs/heads/')", True),
        ("payload.commits | length == 2", True),
        ("'c2' in payload.commits | map(attribute='id')", True),
        ("{{ .input.count >= 5 }}", True),
        ("missing is defined", False),
        ("missing | default(true)", True),
        ("flag", False),
    ],
)
def test_conditions(expression: str, expected: bool) -> None:
    assert is_true(expression, DATA, where=WHERE) is expected


def test_evaluate_returns_the_value() -> None:
    assert evaluate(".payload.commits[1]", DATA, where=WHERE) == {"id": "c2"}
    assert evaluate("input.count * 2", DATA, where=WHERE) == 10


def test_a_missing_variable_is_an_error_naming_it_and_where() -> None:
    assert fails("payload.branch == 'main'") == (
        'tasks[deploy].when: undefined variable "payload.branch": '
        '"payload" has no "branch" (it has: commits, ref)'
    )
    assert fails(".eventNam == 'push'") == (
        'tasks[deploy].when: undefined variable "eventNam": the data has no "eventNam" '
        "(it has: eventName, flag, input, payload)"
    )
    with pytest.raises(TemplateError) as info:
        is_true("input.count > 3 and nope", DATA, where=WHERE)
    assert info.value.details == {"where": WHERE, "variable": "nope"}


def test_syntax_errors() -> None:
    assert fails("payload.ref ==") == (
        "tasks[deploy].when: expression syntax error: unexpected 'end of template'"
    )
    assert (
        check_expression("payload.ref ==")
        == "expression syntax error: unexpected 'end of template'"
    )
    assert check_expression("a == 1 b") == "expression syntax error: chunk after expression"
    assert (
        check_expression(" ") == "the expression is empty; write a condition, e.g. input.count > 3"
    )
    assert check_expression(".") is not None
    assert check_expression(".eventName == 'a' and input.count > 3") is None


def test_the_sandbox_applies() -> None:
    assert fails("''.__class__.__mro__[1].__subclasses__()") == (
        "tasks[deploy].when: unsafe expression: "
        "access to attribute '__class__' of 'str' object is unsafe."
    )
    assert fails("range(10 ** 6) | length > 0").startswith(
        "tasks[deploy].when: expression failed: OverflowError: Range too big."
    )
