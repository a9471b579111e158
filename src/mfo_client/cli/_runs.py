"""`mfo runs ...`: the run history of `mfo flow run`: list, show, resume and cancel runs.

Every command takes `--history` (default `.mfo/runs.db`, or `$MFO_RUNS_DB`). `resume` exits
like `mfo flow run`: 0 the run succeeded, 1 it failed (or was cancelled), 2 it cannot be resumed
(unknown, already succeeded, still running, or its definition cannot be used). `show` and
`cancel` exit 2 for a run they cannot find.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mfo_client.cli._app import app
from mfo_client.cli._common import EXIT_INVALID, load_or_exit
from mfo_client.cli._flow import default_registry
from mfo_client.cli._flow_run import (
    EXIT_FAILED,
    HistoryOption,
    _as_json,
    _summary,
    progress_printer,
)
from mfo_client.flows import (
    DEFAULT_HISTORY_PATH,
    ExecutionOptions,
    FlowClients,
    FlowDefinition,
    FlowDefinitionError,
    FlowExecutor,
    FlowResult,
    RunHistoryError,
    RunRecord,
    RunState,
    RunStatus,
    SQLiteRunHistory,
    TaskStatus,
    build_flow,
    load_flow,
    resume_run,
)
from mfo_client.flows._history import definition_of, owner_alive
from mfo_client.flows._trace import chrome_trace
from mfo_client.observability import configure_logging

__all__ = ["runs_app"]

T = TypeVar("T")

runs_app = typer.Typer(
    help="Flow runs in the run history: list, show, resume and cancel them.",
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs")

_DEFAULT = Path(DEFAULT_HISTORY_PATH)
_GONE = "its process is gone"


def _with_history(path: Path, action: Callable[[SQLiteRunHistory], Awaitable[T]]) -> T:
    async def go() -> T:
        async with SQLiteRunHistory(path) as history:
            return await action(history)

    return asyncio.run(go())


def _require(path: Path) -> None:
    if not path.exists():
        typer.echo(
            f"error: no run history at {path} (runs are recorded by `mfo flow run`)", err=True
        )
        raise typer.Exit(EXIT_INVALID)


def _get(path: Path, run_id: str) -> RunRecord:
    _require(path)
    record = _with_history(path, lambda history: history.get_run(run_id))
    if record is None:
        typer.echo(f'error: no run "{run_id}" in {path}', err=True)
        raise typer.Exit(EXIT_INVALID)
    return record


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _state(record: RunRecord) -> str:
    """The status, saying so when a "running" run's process is known to be gone."""
    if record.status is RunState.RUNNING and owner_alive(record.owner) is False:
        return f"running ({_GONE})"
    return record.status.value


def _counts(record: RunRecord) -> str:
    done = sum(t.status is TaskStatus.SUCCEEDED for t in record.tasks)
    total = len(record.definition.get("tasks", ())) or len(record.tasks)
    return f"{done}/{total}"


def _summary_json(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "flow": record.flow,
        "status": record.status.value,
        "process_gone": record.status is RunState.RUNNING and owner_alive(record.owner) is False,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration": record.duration,
        "error": record.error,
        "trigger": record.trigger,
        "event_id": record.event_id,
        "resumes": record.resumes,
        "tasks_succeeded": sum(t.status is TaskStatus.SUCCEEDED for t in record.tasks),
    }


def _timeline(record: RunRecord) -> list[dict[str, Any]]:
    """Every task of the run, in start order, then those that never started."""
    rows: list[dict[str, Any]] = []
    for task in record.tasks:
        offset = None if task.started_at is None else task.started_at - record.started_at
        rows.append({**dataclasses.asdict(task), "offset": offset, "duration": task.duration})
    seen = {t.task_id for t in record.tasks}
    for task in record.definition.get("tasks", ()):
        if task["id"] not in seen:
            rows.append(
                {
                    "task_id": task["id"],
                    "type": task["type"],
                    "status": TaskStatus.PENDING.value,
                    "attempts": 0,
                    "started_at": None,
                    "finished_at": None,
                    "outputs": {},
                    "error": None,
                    "offset": None,
                    "duration": None,
                }
            )
    return rows


@runs_app.command("list")
def list_runs(
    status: Annotated[RunState | None, typer.Option(help="Only runs with this status.")] = None,
    flow: Annotated[str | None, typer.Option(help="Only runs of this flow (its name).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, latest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
    history: HistoryOption = _DEFAULT,
) -> None:
    """List the latest runs, newest first."""
    records: list[RunRecord] = []
    if history.exists():
        records = _with_history(history, lambda h: h.list_runs(limit, status=status, flow=flow))
    if as_json:
        typer.echo(json.dumps([_summary_json(r) for r in records], indent=2))
        return
    if not records:
        typer.echo(f"no runs in {history}")
        return
    # Plain lines, one per run, never wrapped: easy to read, grep and cut.
    width = max(len(r.run_id) for r in records)
    typer.echo(f"{'RUN':<{width}}  {'STATUS':<9}  {'STARTED':<19}  {'TIME':>9}  {'OK':>5}  FLOW")
    for r in records:
        line = (
            f"{r.run_id:<{width}}  {r.status.value:<9}  {_when(r.started_at):<19}  "
            f"{_seconds(r.duration):>9}  {_counts(r):>5}  {r.flow}"
        )
        note = _GONE if _state(r) != r.status.value else r.error
        typer.echo(line + (f"  ({note})" if note else ""))


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="The run id (`mfo runs list` shows them).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run as JSON, task outputs included.")
    ] = False,
    trace: Annotated[
        Path | None,
        typer.Option(help="Also write a Chrome trace-event JSON (chrome://tracing, Perfetto)."),
    ] = None,
    history: HistoryOption = _DEFAULT,
) -> None:
    """Show one run and the timeline of its tasks."""
    record = _get(history, run_id)
    if trace is not None:
        trace.write_text(json.dumps(chrome_trace(record), default=str), encoding="utf-8")
        typer.echo(f"trace written to {trace}", err=True)
    timeline = _timeline(record)
    if as_json:
        data = {
            **_summary_json(record),
            "flow_file": record.flow_file,
            "owner": record.owner,
            "resumed_at": record.resumed_at,
            "cancel_requested": record.cancel_requested,
            "initial_context": record.initial_context,
            "definition": record.definition,
            "tasks": timeline,
        }
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    lines = [f"run       {record.run_id}"]
    lines.append(
        f"flow      {record.flow}" + (f" ({record.flow_file})" if record.flow_file else "")
    )
    requested = " (cancel requested)" if record.cancel_requested else ""
    lines.append(f"status    {_state(record)}{requested}")
    lines.append(f"started   {_when(record.started_at)}")
    if record.resumes:
        lines.append(f"resumed   {record.resumes}x, last {_when(record.resumed_at)}")
    lines.append(f"finished  {_when(record.finished_at)} ({_seconds(record.duration)})")
    if record.trigger or record.event_id:
        lines.append(f"trigger   {record.trigger or '-'} (event {record.event_id or '-'})")
    if record.error:
        lines.append(f"error     {record.error}")
    # A timeline in plain lines: start offset from the run's start, time taken, then the task;
    # a task's error goes on the line below it.
    lines.append("")
    lines.append(f"{'START':>10}  {'TIME':>9}  {'STATUS':<9}  {'TRIES':>5}  TASK")
    for row in timeline:
        start = "-" if row["offset"] is None else f"+{row['offset']:.3f}s"
        lines.append(
            f"{start:>10}  {_seconds(row['duration']):>9}  {row['status']:<9}  "
            f"{row['attempts']:>5}  {row['task_id']} ({row['type']})"
        )
        if row["error"]:
            lines.append(f"{'':>12}{row['error']}")
    if record.status is not RunState.SUCCEEDED and (
        record.status is not RunState.RUNNING or owner_alive(record.owner) is False
    ):
        hint = f"mfo runs resume {record.run_id}"
        if history != _DEFAULT:
            hint += f" --history {shlex.quote(str(history))}"
        # The history does not keep which config a run used: say so rather than guess.
        hint += " [--config FILE, as the run had: without it no MFO server is used]"
        lines += ["", f"resume it with: {hint}"]
    typer.echo("\n".join(lines))


@runs_app.command("resume")
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to resume.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Configuration with the MFO server to use (client section)."
        ),
    ] = None,
    flow_file: Annotated[
        Path | None,
        typer.Option(help="Run this (fixed) flow file instead of the definition recorded."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Tasks running at once.")] = 8,
    fail_fast: Annotated[
        bool, typer.Option(help="Cancel the other tasks at the first failure.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(help="Resume a run recorded as running by a live process on this host."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    history: HistoryOption = _DEFAULT,
) -> None:
    """Run RUN_ID again: its succeeded tasks are not re-run (their outputs are restored)."""
    err = Console(stderr=True, highlight=False)
    out = Console()
    record = _get(history, run_id)
    registry = default_registry()
    try:
        definition: FlowDefinition = load_flow(flow_file) if flow_file else definition_of(record)
        definition = build_flow(definition, registry).definition
    except FlowDefinitionError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    cfg = load_or_exit(config) if config is not None else None
    configure_logging("info", cfg.logging.format if cfg is not None else "text")
    if not as_json:
        ids = {t.id for t in definition.tasks}
        kept = [t.task_id for t in record.tasks if t.status is TaskStatus.SUCCEEDED]
        kept = [tid for tid in kept if tid in ids]
        if kept and record.status is not RunState.SUCCEEDED:
            err.print(f"restored (not re-run): {escape(', '.join(kept))}")

    async def execute() -> FlowResult:
        clients = FlowClients.from_config(cfg) if cfg is not None else FlowClients()
        executor = FlowExecutor(registry, concurrency, clients)
        options = ExecutionOptions(
            fail_fast=fail_fast, observer=None if as_json else progress_printer(err)
        )
        try:
            async with SQLiteRunHistory(history) as store:
                return await resume_run(
                    executor, store, run_id, definition=definition, options=options, force=force
                )
        finally:
            executor.close()
            await clients.aclose()

    try:
        result = asyncio.run(execute())
    except RunHistoryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        typer.echo(_as_json(result))
    else:
        _summary(result, out)
    if not result.succeeded:
        raise typer.Exit(EXIT_FAILED)


@runs_app.command("cancel")
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run to cancel.")],
    history: HistoryOption = _DEFAULT,
) -> None:
    """Cancel a running run: the process running it cancels it within a second.

    A run recorded as running whose process is gone (on this host) is marked cancelled at once.
    """
    record = _get(history, run_id)
    if record.status.is_final:
        typer.echo(
            f'error: run "{run_id}" already {record.status.value}; nothing to cancel', err=True
        )
        raise typer.Exit(EXIT_INVALID)
    if owner_alive(record.owner) is False:
        reason = f"cancelled while not running ({_GONE})"
        _with_history(
            history, lambda h: h.finish_run(run_id, RunStatus.CANCELLED, reason, time.time())
        )
        typer.echo(f"run {run_id} was not running ({_GONE}): marked cancelled")
        return
    if not _with_history(history, lambda h: h.request_cancel(run_id)):
        typer.echo(f'error: run "{run_id}" is no longer running; nothing to cancel', err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"cancel requested for run {run_id}; the process running it will cancel it")
