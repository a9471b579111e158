"""`mfo flow run`: run one flow file locally, with live progress and a summary.

Exit codes: 0 the flow succeeded, 1 it failed (or was cancelled), 2 the definition or the
input cannot be used. With `--dry-run`: 0 every task can run with the input given (values that
upstream tasks produce are shown as filled at run time), 2 the definition is invalid or an input
is missing (or a task reads the output of a task it does not depend on).

The run is recorded in the run history (`--history`, default `.mfo/runs.db`; `--no-history`
to skip it), so a failed or killed run can be resumed with `mfo runs resume RUN_ID`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mfo_client.cli._common import EXIT_INVALID, load_or_exit
from mfo_client.cli._flow import default_registry, flow_app
from mfo_client.config import Config
from mfo_client.flows import (
    DEFAULT_HISTORY_PATH,
    BuiltFlow,
    ExecutionOptions,
    FlowClients,
    FlowDefinitionError,
    FlowExecutor,
    FlowResult,
    RunHistoryError,
    SQLiteRunHistory,
    TaskResult,
    TaskStatus,
    build_flow,
    load_flow,
)
from mfo_client.flows._executor import hidden_keys
from mfo_client.flows._preview import preview_flow
from mfo_client.flows._secrets import SecretScope, config_secrets
from mfo_client.observability import configure_logging

__all__ = ["HISTORY_ENV", "HistoryOption", "parse_inputs"]

EXIT_FAILED = 1
HISTORY_ENV = "MFO_RUNS_DB"
HistoryOption = Annotated[
    Path,
    typer.Option(
        "--history",
        envvar=HISTORY_ENV,
        help=f"The run history (SQLite file; ${HISTORY_ENV} if set).",
    ),
]
_MARK = {
    TaskStatus.RUNNING: "[cyan]>[/]",
    TaskStatus.SUCCEEDED: "[green]ok[/]",
    TaskStatus.FAILED: "[red]FAILED[/]",
    TaskStatus.SKIPPED: "[yellow]skipped[/]",
    TaskStatus.CANCELLED: "[yellow]cancelled[/]",
}


def parse_inputs(pairs: list[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """`KEY=VALUE` pairs into a nested mapping: a dotted KEY makes nested maps, and VALUE is
    JSON when it parses as JSON, else text. Raises ValueError naming a bad pair."""
    data: dict[str, Any] = dict(base or {})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--input {pair!r}: expected KEY=VALUE, e.g. input.dataID=42")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return data


def _initial(input_file: Path | None, pairs: list[str]) -> dict[str, Any]:
    base: dict[str, Any] = {}
    if input_file is not None:
        try:
            loaded = json.loads(input_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--input-file {input_file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"--input-file {input_file}: must hold a JSON object")
        base = loaded
    return parse_inputs(pairs, base)


def _dry_run(built: BuiltFlow, initial: dict[str, Any], out: Console, cfg: Config | None) -> int:
    """Render what can be rendered and say what each task would do; nothing runs. Returns the
    exit code: 2 when the run would fail on its input (each problem also on stderr).

    `${VAR}` are expanded as a run would (with the config's `flows.secrets`), secrets shown as
    `***`; what upstream tasks produce is shown as `<filled at run time: task.key>`.
    """
    scope = SecretScope.for_run(
        built.definition,
        secrets=config_secrets(cfg) if cfg is not None else (),
        secret_env=cfg.flows.secrets if cfg is not None else (),
    )
    previews, problems = preview_flow(built, initial, scope)
    for preview in previews:
        deps = ", ".join(preview.after) or "-"
        out.print(f"[bold]{escape(preview.id)}[/] ({escape(preview.type)}) after: {deps}")
        out.print(f"  config: {escape(json.dumps(preview.config, default=str))}")
        for note in preview.notes:
            out.print(f"  [dim]rendered when it runs: {escape(note)}[/]")
        if preview.when is not None:
            out.print(f"  when: {escape(preview.when)}")
        for problem in preview.problems:
            out.print(f"  [red]error: {escape(problem)}[/]")
        problems += preview.problems
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        count = len(problems)
        typer.echo(
            f"dry run: {count} problem{'s' if count > 1 else ''}: the run would fail",
            err=True,
        )
        return EXIT_INVALID
    return 0


def progress_printer(err: Console) -> Callable[[TaskResult], None]:
    """Live progress lines for a run: one when a task starts and one when it ends."""

    def progress(result: TaskResult) -> None:
        if result.status is TaskStatus.RUNNING:
            err.print(f"{_MARK[result.status]} {escape(result.id)} ({escape(result.type)})")
        elif result.status in _MARK:
            took = f" in {result.duration:.3f}s" if result.duration is not None else ""
            error = (result.error or "").removeprefix("skipped: ")
            why = f": {escape(error)}" if error else ""
            err.print(f"{_MARK[result.status]} {escape(result.id)}{took}{why}")

    return progress


def _summary(result: FlowResult, out: Console) -> None:
    table = Table(title=f"{result.flow} ({result.run_id})")
    for column in ("task", "status", "attempts", "time", "error"):
        table.add_column(column)
    for r in result.tasks.values():
        took = f"{r.duration:.3f}s" if r.duration is not None else "-"
        table.add_row(escape(r.id), r.status.value, str(r.attempts), took, escape(r.error or ""))
    out.print(table)
    out.print(f"flow {result.flow} {result.status.value} in {result.duration:.3f}s")


def _as_json(result: FlowResult) -> str:
    data = dataclasses.asdict(result)
    data["duration"] = result.duration
    return json.dumps(data, default=str, indent=2)


@flow_app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="The flow definition (YAML).", show_default=False)],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="KEY=VALUE for the initial context; dotted keys nest."),
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option(help="A JSON object to start the initial context from.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Configuration with the MFO server to use (client section)."
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Tasks running at once [default: flows.concurrency, or 8]."),
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option(help="Cancel the other tasks at the first failure.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render templates, run nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    history: HistoryOption = Path(DEFAULT_HISTORY_PATH),
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Do not record the run (it cannot be resumed).")
    ] = False,
) -> None:
    """Run FILE once with the built-in task types (and installed task packs)."""
    err = Console(stderr=True)
    out = Console()
    try:
        built = build_flow(load_flow(file), default_registry())
    except FlowDefinitionError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    try:
        initial = _initial(input_file, inputs or [])
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    cfg = load_or_exit(config) if config is not None else None
    for warning in built.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if dry_run:
        code = _dry_run(built, initial, out, cfg)
        if code:
            raise typer.Exit(code)
        return
    if (clash := hidden_keys(built.definition, initial)) is not None:
        typer.echo(f"error: {clash}", err=True)
        raise typer.Exit(EXIT_INVALID)
    configure_logging("info", cfg.logging.format if cfg is not None else "text")

    progress = None if as_json else progress_printer(err)

    run_id = uuid.uuid4().hex
    if not no_history and not as_json:
        err.print(f"run {run_id}", highlight=False)

    async def execute() -> FlowResult:
        clients = FlowClients.from_config(cfg) if cfg is not None else FlowClients()
        limit = concurrency or (cfg.flows.concurrency if cfg is not None else 8)
        executor = FlowExecutor(default_registry(), limit, clients)
        store = None if no_history else SQLiteRunHistory(history)
        try:
            return await executor.execute_flow(
                built.definition,
                initial,
                ExecutionOptions(
                    run_id=run_id,
                    fail_fast=fail_fast,
                    observer=progress,
                    history=store,
                    config_path=None if config is None else str(config.resolve()),
                ),
            )
        finally:
            executor.close()
            if store is not None:
                await store.close()
            await clients.aclose()

    try:
        result = asyncio.run(execute())
    except (sqlite3.Error, OSError, RunHistoryError) as exc:  # only the run's start can raise
        if no_history:
            raise
        typer.echo(
            f"error: cannot record the run in the run history {history}: {exc} "
            "(run with --no-history to run it unrecorded)",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        typer.echo(_as_json(result))
    else:
        _summary(result, out)
    if not result.succeeded:
        if not no_history:
            hint = f"mfo runs resume {run_id}"
            if history != Path(DEFAULT_HISTORY_PATH):
                hint += f" --history {shlex.quote(str(history))}"
            if config is not None:
                hint += f" --config {shlex.quote(str(config))}"
            else:
                hint += " [--config FILE, if its tasks need the MFO server]"
            typer.echo(f"run {run_id} {result.status.value}; resume it with: {hint}", err=True)
        raise typer.Exit(EXIT_FAILED)
