"""`${VAR}` and `${VAR:-default}` in the strings of a task's config, read when the task runs.

The syntax is the configuration file's (`mfo_client.config._expand`, whose pattern this
reuses): `$$` is a literal `$`, a `$` followed by anything else is left alone, and `:-` also
applies the default when the variable is set but empty. Which variables a run may read, and
which values it hides, is `_secrets`' business: expansion only asks a `resolve` callable.

Only the flow file's own text is expanded, never a value that reaches the config through a
template (event data, upstream outputs): an event holding `${AWS_SECRET}` cannot make a flow
read the environment. So in a string that also holds templates, `${VAR}` is expanded in the
text around the tags only (not inside `{{ }}`, `{% %}`, comments or raw blocks), and each
reference becomes a template reference to `ENV_DATA[i]`, a variable outside the run's data:
the value is handed to the renderer as data, never parsed as template source, and the
compiled template (cached) holds no value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from mfo_client.config._expand import _REFERENCE
from mfo_client.flows._template_go import (
    _RAW_BEGIN,
    _RAW_END,
    _TAG_OPEN,
    WholeDataError,
    _translate_code,
)

__all__ = [
    "ENV_DATA",
    "MALFORMED",
    "EnvError",
    "env_problem",
    "expand_template",
    "expand_text",
    "has_env",
]

ENV_DATA = "__mfo_env__"
"""The template variable holding a string's expanded values; never a key of the run's data."""
MALFORMED = 'malformed "${": write ${NAME} or ${NAME:-default}, or $$ for a literal "$"'

Resolve = Callable[[str, str | None], str]
"""`(name, default or None) -> value`; raises `EnvError` for a variable it cannot give."""


class EnvError(Exception):
    """A `${...}` that cannot be expanded; the message says why and what would be right."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.variable = variable


def has_env(text: str) -> bool:
    """Whether expanding changes `text` (or fails): it holds `${` or `$$`."""
    return "$" in text and _REFERENCE.search(text) is not None


def expand_text(text: str, resolve: Resolve) -> str:
    """`text`, holding no template, with every `${...}` resolved and `$$` made `$`."""

    def replace(match: re.Match[str]) -> str:
        if match["dollar"] is not None:
            return "$"
        if match["bad"] is not None:
            raise EnvError(MALFORMED)
        return resolve(match["name"], match["default"])

    return _REFERENCE.sub(replace, text)


def expand_template(source: str, resolve: Resolve) -> tuple[str, list[str]]:
    """The template `source` with each `${...}` of its text as a reference to `ENV_DATA[i]`,
    and the values, by `i`."""
    values: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match["dollar"] is not None:
            return "$"
        if match["bad"] is not None:
            raise EnvError(MALFORMED)
        values.append(resolve(match["name"], match["default"]))
        return f"{{{{ {ENV_DATA}[{len(values) - 1}] }}}}"

    parts = [
        _REFERENCE.sub(replace, source[start:end]) if text else source[start:end]
        for start, end, text in _spans(source)
    ]
    return "".join(parts), values


def env_problem(source: str) -> str | None:
    """The syntax problem of the `${...}` in a config string (checked before the run), if any."""
    if not has_env(source):
        return None
    templated = "{{" in source or "{%" in source
    spans = _spans(source) if templated else iter([(0, len(source), True)])
    for start, end, text in spans:
        if text and any(m["bad"] is not None for m in _REFERENCE.finditer(source, start, end)):
            return MALFORMED
    return None


def _spans(source: str) -> Iterator[tuple[int, int, bool]]:
    """`(start, end, is_text)` pieces of a template: text, or a tag, comment or raw block.

    The same scan as `translate_template`, so text and tags are told apart as the renderer does.
    """
    pos = 0
    while match := _TAG_OPEN.search(source, pos):
        start = match.start()
        yield pos, start, True
        tag = match.group()
        if tag == "{#":
            stop = source.find("#}", start + 2)
            pos = len(source) if stop < 0 else stop + 2
        elif tag == "{%" and (raw := _RAW_BEGIN.match(source, start)):
            end = _RAW_END.search(source, raw.end())
            pos = end.end() if end else len(source)
        else:
            closing = "}}" if tag == "{{" else "%}"
            try:
                stop = _translate_code(source, start + 2, closing)[1]
            except WholeDataError:  # `{{.}}`: refused when compiled; find the tag's end anyway
                stop = source.find(closing, start + 2)
                stop = len(source) if stop < 0 else stop
            pos = min(len(source), stop + 2)
        yield start, pos, False
    yield pos, len(source), True
