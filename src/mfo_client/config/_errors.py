"""What went wrong in a configuration, said the way a user fixes it: file, line, key, rule.

Hierarchy::

    Exception
     └── ConfigError      every problem found in one load, raised together

`ConfigProblem` is a plain value; it also describes warnings (unknown keys), which never raise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigProblem", "KeyPath", "format_path"]

KeyPath = tuple[str | int, ...]
"""Keys and list indexes from the top of the file down to one value."""


def format_path(path: KeyPath) -> str:
    """`("flows", 0, "name")` -> `flows[0].name`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


@dataclass(frozen=True)
class ConfigProblem:
    """One problem (or warning) and where it was found.

    `path` is the dotted key path (`client.retry.max_attempts`, `flows[0].name`), empty for
    problems with the file as a whole. A value that came from an environment override names
    the variable in `env_var` instead of a file line.
    """

    file: str | None
    path: str
    message: str
    line: int | None = None
    column: int | None = None
    env_var: str | None = None

    @property
    def location(self) -> str:
        """Where to look: `file:line[:column]`, `file`, or the environment variable."""
        if self.env_var is not None:
            return f"environment variable {self.env_var}"
        if self.file is None:
            return ""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        return ": ".join(part for part in (self.location, self.path, self.message) if part)


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason, not just the first.

    `warnings` carries what would have been reported on success (unknown keys), since a
    did-you-mean hint often explains an error.
    """

    def __init__(
        self, problems: Iterable[ConfigProblem], warnings: Iterable[ConfigProblem] = ()
    ) -> None:
        self.problems = list(problems)
        self.warnings = list(warnings)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)
