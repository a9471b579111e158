"""Reading a YAML file while remembering the line of every key, so problems can point at it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mfo_client.config._errors import ConfigError, ConfigProblem, KeyPath

__all__ = ["Lines", "read_yaml"]

Lines = dict[KeyPath, int]
"""1-based line of the key (or list item) at each path."""


def read_yaml(path: str | os.PathLike[str]) -> tuple[Any, Lines]:
    """Parse the file with the safe loader; any failure is a `ConfigError` naming the file."""
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _error(file, "file not found") from None
    except IsADirectoryError:
        raise _error(file, "is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise _error(file, "not UTF-8 text; save the file as UTF-8", line=line) from None
    except OSError as exc:
        raise _error(file, f"cannot read: {exc.strerror or exc}") from None

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(file, exc) from None
    except yaml.YAMLError as exc:
        raise _error(file, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()

    lines: Lines = {}
    if node is not None:
        lines[()] = node.start_mark.line + 1
        # Walked after construction, so merge keys (`<<: *base`) are already flattened in.
        _record(node, (), lines, set())
    return data, lines


def _record(node: Node, path: KeyPath, lines: Lines, ancestors: set[int]) -> None:
    if id(node) in ancestors:  # a recursive alias; its keys were recorded on the way down
        return
    ancestors = ancestors | {id(node)}
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                key_path = (*path, key_node.value)
                lines.setdefault(key_path, key_node.start_mark.line + 1)
                _record(value_node, key_path, lines, ancestors)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, index), item.start_mark.line + 1)
            _record(item, (*path, index), lines, ancestors)


def _syntax_error(file: str, exc: yaml.MarkedYAMLError) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    # PyYAML's own order reads as a sentence: "while scanning ..., found ..."
    reason = ", ".join(part for part in (exc.context, exc.problem) if part) or "cannot parse"
    message = f"invalid YAML: {reason}"
    return ConfigError(
        [
            ConfigProblem(
                file=file,
                path="",
                message=message,
                line=None if mark is None else mark.line + 1,
                column=None if mark is None else mark.column + 1,
            )
        ]
    )


def _error(file: str, message: str, line: int | None = None) -> ConfigError:
    return ConfigError([ConfigProblem(file=file, path="", message=message, line=line)])
