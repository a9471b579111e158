"""Go-style references (`{{.input.dataID}}`) turned into Jinja2 (`{{ input.dataID }}`).

A small scanner over `{{ }}` and `{% %}` that skips string literals, comments and raw blocks and
drops a dot that starts a reference.
"""

from __future__ import annotations

import re

__all__ = [
    "WHOLE_DATA",
    "WholeDataError",
    "single_expression",
    "translate_expression",
    "translate_template",
]


class WholeDataError(Exception):
    """`{{.}}`: Go's "the whole data", which a config value has no use for."""


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
WHOLE_DATA = (
    '"." (the whole data) is not supported; name the value you need, '
    "e.g. {{.eventName}} or {{ input.dataID }}"
)


def translate_template(source: str) -> str:
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


def translate_expression(source: str) -> str:
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
                raise WholeDataError(WHOLE_DATA)
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


def single_expression(source: str) -> str | None:
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
