"""`mfo flow ...`: check taskflow files and draw them.

`flow_app` is the group; other `flow` commands live in their own modules (`_flow_run.py`) and
attach to it by importing it from here. `default_registry()` is the task registry those
commands share.

Exit codes: 0 every file is valid, 2 a file cannot be used (every problem is on stderr).
"""

from __future__ import annotations

import enum
import importlib
from pathlib import Path
from typing import Annotated, cast

import typer

from mfo_client.cli._app import app
from mfo_client.cli._common import EXIT_INVALID
from mfo_client.flows._build import build_flow
from mfo_client.flows._errors import FlowDefinitionError
from mfo_client.flows._graph import to_dot, to_mermaid
from mfo_client.flows._loader import load_flow
from mfo_client.flows._registry import TaskRegistry

__all__ = ["GraphFormat", "default_registry", "flow_app"]

_TASKS_MODULE = "mfo_client.flows.tasks"

flow_app = typer.Typer(help="Check taskflow files and draw them.", no_args_is_help=True)
app.add_typer(flow_app, name="flow")


class GraphFormat(enum.StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"


def default_registry() -> TaskRegistry:
    """The built-in task types plus installed task packs (`mfo_client.tasks` entry points).

    Without the built-in tasks the registry holds only the packs, and a note on stderr says so.
    """
    try:
        module = importlib.import_module(_TASKS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != _TASKS_MODULE:
            raise
        module = None
    builtin_registry = getattr(module, "builtin_registry", None)
    if callable(builtin_registry):
        registry = cast(TaskRegistry, builtin_registry())
    else:
        registry = TaskRegistry()
        typer.echo(
            f"note: the built-in task types are not available ({_TASKS_MODULE}.builtin_registry "
            "is missing), so every task type is reported as unknown",
            err=True,
        )
    registry.load_entry_points()
    return registry


@flow_app.command("validate")
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Flow definition files (YAML).", show_default=False)
    ],
) -> None:
    """Check each FILE: its YAML, keys, task graph, task types and task configs.

    Prints "FILE: ok (N tasks)" for each valid file (and its warnings on stderr); exits 2 with
    every problem on stderr.
    """
    registry = default_registry()
    failed = False
    for file in files:
        try:
            built = build_flow(load_flow(file), registry)
        except FlowDefinitionError as exc:
            failed = True
            for problem in exc.problems:
                typer.echo(f"error: {problem}", err=True)
            continue
        count = len(built.definition.tasks)
        typer.echo(f"{file}: ok ({count} task{'' if count == 1 else 's'})")
        for warning in built.warnings:
            typer.echo(f"warning: {warning}", err=True)
    if failed:
        raise typer.Exit(EXIT_INVALID)


@flow_app.command("graph")
def graph(
    file: Annotated[Path, typer.Argument(help="A flow definition file (YAML).")],
    output_format: Annotated[
        GraphFormat,
        typer.Option("--format", "-f", help="Mermaid (for Markdown) or Graphviz DOT."),
    ] = GraphFormat.MERMAID,
) -> None:
    """Print FILE's tasks and edges as a Mermaid flowchart or a Graphviz digraph.

    Task types are not checked: a flow can be drawn before its task types are installed.
    """
    try:
        definition = load_flow(file)
    except FlowDefinitionError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    render = to_dot if output_format is GraphFormat.DOT else to_mermaid
    typer.echo(render(definition), nl=False)
