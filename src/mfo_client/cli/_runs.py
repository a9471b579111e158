"""`mfo runs ...`: the run history: list, show, resume, retry and cancel runs.

Which history, the first that is given: `--history FILE` (a SQLite file); `--config FILE`, whose
store decides (`store.backend: redis`: the runs in that Redis under `store.prefix`, which the
services sharing it record; `sqlite`: the file `flows.history`); `$MFO_RUNS_DB`; `$MFO_CONFIG`
(as `--config`); `.mfo/runs.db`, where `mfo flow run` records by default. `list`, `show` and
`cancel` refuse both `--history` and `--config` (one would be ignored); for `resume` and `retry`,
`--config` also names the MFO server to use, so with `--history` it does only that.

`resume` and `retry` exit like `mfo flow run`: 0 the run succeeded, 1 it failed (or was
cancelled), 2 it cannot be run (unknown, already succeeded, still running, a subflow's child
run, its definition or config cannot be used). Without `--config` they use the config file the
run recorded, when there is one: a run that used an MFO server must not quietly run without
it, so a recorded config that no longer exists is an error (exit 2) until `--config` names one.
`show` and `cancel` exit 2 for a run they cannot find.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shlex
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
    HISTORY_ENV,
    _as_json,
    _summary,
    progress_printer,
)
from mfo_client.config import Config
from mfo_client.flows import (
    DEFAULT_HISTORY_PATH,
    ExecutionOptions,
    FlowClients,
    FlowDefinition,
    FlowDefinitionError,
    FlowExecutor,
    FlowResult,
    RedisRunHistory,
    RunHistory,
    RunHistoryError,
    RunRecord,
    RunState,
    SQLiteRunHistory,
    TaskStatus,
    build_flow,
    load_flow,
    open_history,
    resume_run,
)
from mfo_client.flows._history import (
    check_retryable,
    child_run_id,
    definition_of,
    mark_cancelled,
    owner_alive,
    retry_run,
)
from mfo_client.flows._trace import chrome_trace
from mfo_client.observability import configure_logging

__all__ = ["runs_app"]

T = TypeVar("T")

runs_app = typer.Typer(
    help="Flow runs in the run history: list, show, resume, retry and cancel them.",
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs")

_DEFAULT = Path(DEFAULT_HISTORY_PATH)
_GONE = "its process is gone"
_CONFIG_ENV = "MFO_CONFIG"

HistoryOption = Annotated[
    Path | None,
    typer.Option(
        "--history",
        help=f"The run history, a SQLite file (default: ${HISTORY_ENV}, else "
        f"{DEFAULT_HISTORY_PATH}; see --config).",
        show_default=False,
    ),
]
StoreConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Use the run history of this configuration: its store decides (backend redis: "
        "the runs in store.url under store.prefix; sqlite: the file flows.history). "
        f"Default: ${_CONFIG_ENV}, unless --history or ${HISTORY_ENV} is given.",
        show_default=False,
    ),
]


@dataclass(frozen=True, slots=True)
class _Source:
    """The run history a command uses, and how to name it to the user."""

    path: Path | None
    """The SQLite file; None for the Redis of `config`."""
    config: Config | None
    """The configuration whose store named the history, loaded from `config_file`."""
    config_file: Path | None
    args: str
    """What a suggested command needs to reach the same history (e.g. " --history x.db")."""

    def open(self) -> SQLiteRunHistory | RedisRunHistory:
        if self.path is not None:
            return SQLiteRunHistory(self.path)
        assert self.config is not None
        return open_history(self.config)

    @property
    def label(self) -> str:
        if self.path is not None:
            return str(self.path)
        assert self.config is not None
        store = self.config.store
        assert store.url is not None  # the config refuses redis without a url
        return RedisRunHistory.describe(store.url.get_secret_value(), store.prefix)


def _source(history: Path | None, config: Path | None, *, both: bool = False) -> _Source:
    """The history `--history`/`--config` (or the environment) name; see the module docs.
    Without `both`, giving the two options is an error (exit 2)."""
    if history is not None and config is not None and not both:
        typer.echo(
            "error: --history and --config both name a run history; pass one of them",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)
    env_history = os.environ.get(HISTORY_ENV) or None
    env_config = os.environ.get(_CONFIG_ENV) or None
    args = ""
    if history is None and config is None and env_history is None and env_config is not None:
        config = Path(env_config)  # as if given, but a suggested command needs not repeat it
    elif config is not None and history is None:
        args = f" --config {shlex.quote(str(config))}"
    cfg: Config | None = None
    if history is None and config is not None:
        cfg = load_or_exit(config)
        if cfg.store.backend == "redis":
            return _Source(None, cfg, config, args)
        history = Path(cfg.flows.history)
    path = history or (Path(env_history) if env_history else _DEFAULT)
    if not args and path != _DEFAULT:
        args = f" --history {shlex.quote(str(path))}"
    return _Source(path, cfg, config if cfg is not None else None, args)


def _with_history(source: _Source, action: Callable[[RunHistory], Awaitable[T]]) -> T:
    async def go() -> T:
        async with source.open() as history:
            return await action(history)

    try:
        return asyncio.run(go())
    except RunHistoryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _require(source: _Source) -> None:
    if source.path is not None and not source.path.exists():
        typer.echo(
            f"error: no run history at {source.path} (runs are recorded by `mfo flow run`, "
            "and by `mfo serve` for its triggers)",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)


def _get(source: _Source, run_id: str) -> RunRecord:
    _require(source)
    record = _with_history(source, lambda history: history.get_run(run_id))
    if record is None:
        typer.echo(f'error: no run "{run_id}" in {source.label}', err=True)
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
        "config_path": record.config_path,
        "parent_run_id": record.parent_run_id,
        "parent_task_id": record.parent_task_id,
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
    trigger: Annotated[
        str | None, typer.Option(help="Only runs this trigger started (its name).")
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Only runs about this event (its id).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, latest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
    history: HistoryOption = None,
    config: StoreConfigOption = None,
) -> None:
    """List the latest runs, newest first; a subflow's child run names its parent (PARENT)."""
    source = _source(history, config)
    records: list[RunRecord] = []
    if source.path is None or source.path.exists():
        records = _with_history(
            source,
            lambda h: h.list_runs(limit, status=status, flow=flow, trigger=trigger, event_id=event),
        )
    if as_json:
        typer.echo(json.dumps([_summary_json(r) for r in records], indent=2))
        return
    if not records:
        typer.echo(f"no runs in {source.label}")
        return
    # Plain lines, one per run, never wrapped: easy to read, grep and cut. The optional columns
    # are there only when a listed run has them.
    optional: list[tuple[str, Callable[[RunRecord], str | None]]] = [
        ("TRIGGER", lambda r: r.trigger),
        ("EVENT", lambda r: r.event_id),
        ("PARENT", lambda r: r.parent_run_id),
    ]
    columns = [(n, get) for n, get in optional if any(get(r) for r in records)]
    widths = {n: max(len(n), *(len(get(r) or "-") for r in records)) for n, get in columns}
    width = max(len(r.run_id) for r in records)
    extra = "".join(f"{n:<{widths[n]}}  " for n, _ in columns)
    typer.echo(
        f"{'RUN':<{width}}  {'STATUS':<9}  {'STARTED':<19}  {'TIME':>9}  {'OK':>5}  {extra}FLOW"
    )
    for r in records:
        extra = "".join(f"{get(r) or '-':<{widths[n]}}  " for n, get in columns)
        line = (
            f"{r.run_id:<{width}}  {r.status.value:<9}  {_when(r.started_at):<19}  "
            f"{_seconds(r.duration):>9}  {_counts(r):>5}  {extra}{r.flow}"
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
    history: HistoryOption = None,
    config: StoreConfigOption = None,
) -> None:
    """Show one run and the timeline of its tasks."""
    source = _source(history, config)
    record = _get(source, run_id)
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
    if record.parent_run_id:
        lines.append(f"parent    task {record.parent_task_id} of run {record.parent_run_id}")
    if record.config_path:
        gone = "" if Path(record.config_path).is_file() else " (no longer exists)"
        lines.append(f"config    {record.config_path}{gone}")
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
    # a task's error goes on the line below it, and so does a subflow's child run.
    for_each = {t["id"] for t in record.definition.get("tasks", ()) if t.get("for_each")}
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
        if row["type"] == "subflow" and row["started_at"] is not None:
            child = child_run_id(record.run_id, row["task_id"])
            runs = f"child runs {child}[i], one per item" if row["task_id"] in for_each else ""
            lines.append(f"{'':>12}{runs or f'child run {child}'}")
    hint = _hint(record, source)
    if hint:
        lines += ["", hint]
    typer.echo("\n".join(lines))


def _hint(record: RunRecord, source: _Source) -> str | None:
    """How to go on with a run that did not succeed, if it can be taken up from here."""
    if record.status is RunState.SUCCEEDED or (
        record.status is RunState.RUNNING and owner_alive(record.owner) is not False
    ):
        return None
    where = source.args
    if record.parent_run_id:
        return (
            f"a subflow's child run: resume its parent with: "
            f"mfo runs resume {record.parent_run_id}{where}"
        )
    hint = f"resume it with: mfo runs resume {record.run_id}{where}"
    if record.status is not RunState.RUNNING:
        hint += f"\nor run it anew with: mfo runs retry {record.run_id}{where}"
    return hint


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Configuration with the MFO server to use (client section); default: the one "
        "the run recorded. Without --history, its store also decides which run history "
        "(backend redis: the runs in store.url under store.prefix; sqlite: flows.history).",
        show_default=False,
    ),
]
FlowFileOption = Annotated[
    Path | None,
    typer.Option(help="Run this (fixed) flow file instead of the definition recorded."),
]
ConcurrencyOption = Annotated[int, typer.Option(min=1, help="Tasks running at once.")]
FailFastOption = Annotated[bool, typer.Option(help="Cancel the other tasks at the first failure.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _config_of(record: RunRecord, given: Path | None) -> Path | None:
    """`--config`, else the config the run recorded, if it has one; exit 2 if that is gone."""
    if given is not None or record.config_path is None:
        return given
    recorded = Path(record.config_path)
    if not recorded.is_file():
        typer.echo(
            f'error: run "{record.run_id}" used the config {recorded}, which no longer exists; '
            "pass --config FILE with the MFO server (client section) to use",
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"using the config the run recorded: {recorded} (--config to use another)", err=True)
    return recorded


def _definition(record: RunRecord, flow_file: Path | None) -> FlowDefinition:
    """The definition to run: `flow_file`, or the recorded one; built, or exit 2."""
    try:
        definition = load_flow(flow_file) if flow_file else definition_of(record)
        return build_flow(definition, default_registry()).definition
    except FlowDefinitionError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _run_again(
    source: _Source,
    config: Path | None,
    concurrency: int,
    options: ExecutionOptions,
    run: Callable[[FlowExecutor, RunHistory, ExecutionOptions], Awaitable[FlowResult]],
    as_json: bool,
) -> None:
    """Run `run` with an executor over `config`; print the result; exit 1 if it failed."""
    cfg = None
    if config is not None:  # loaded once: its warnings are printed once
        cfg = source.config if source.config_file == config else load_or_exit(config)
    configure_logging("info", cfg.logging.format if cfg is not None else "text")
    if config is not None:
        options.config_path = str(config.resolve())
    if not as_json:
        options.observer = progress_printer(Console(stderr=True, highlight=False))

    async def execute() -> FlowResult:
        clients = FlowClients.from_config(cfg) if cfg is not None else FlowClients()
        executor = FlowExecutor(default_registry(), concurrency, clients)
        try:
            async with source.open() as store:
                return await run(executor, store, options)
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
        _summary(result, Console())
    if not result.succeeded:
        raise typer.Exit(EXIT_FAILED)


@runs_app.command("resume")
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to resume.")],
    config: ConfigOption = None,
    flow_file: FlowFileOption = None,
    concurrency: ConcurrencyOption = 8,
    fail_fast: FailFastOption = False,
    force: Annotated[
        bool,
        typer.Option(help="Resume a run recorded as running by a live process on this host."),
    ] = False,
    as_json: JsonOption = False,
    history: HistoryOption = None,
) -> None:
    """Run RUN_ID again: its succeeded tasks are not re-run (their outputs are restored)."""
    source = _source(history, config, both=True)
    record = _get(source, run_id)
    definition = _definition(record, flow_file)
    config = _config_of(record, config)
    if not as_json:
        ids = {t.id for t in definition.tasks}
        kept = [t.task_id for t in record.tasks if t.status is TaskStatus.SUCCEEDED]
        kept = [tid for tid in kept if tid in ids]
        if kept and record.status is not RunState.SUCCEEDED and not record.parent_run_id:
            err = Console(stderr=True, highlight=False)
            err.print(f"restored (not re-run): {escape(', '.join(kept))}")

    async def run(
        executor: FlowExecutor, store: RunHistory, options: ExecutionOptions
    ) -> FlowResult:
        return await resume_run(
            executor, store, run_id, definition=definition, options=options, force=force
        )

    _run_again(source, config, concurrency, ExecutionOptions(fail_fast=fail_fast), run, as_json)


@runs_app.command("retry")
def retry(
    run_id: Annotated[str, typer.Argument(help="The failed or cancelled run to run anew.")],
    config: ConfigOption = None,
    flow_file: FlowFileOption = None,
    concurrency: ConcurrencyOption = 8,
    fail_fast: FailFastOption = False,
    as_json: JsonOption = False,
    history: HistoryOption = None,
) -> None:
    """Run RUN_ID's flow again as a new run (a new id): every task runs, with the same initial
    context, trigger and event. The definition is the one recorded (--flow-file to use a fixed
    file); RUN_ID itself stays as it is."""
    source = _source(history, config, both=True)
    record = _get(source, run_id)
    try:
        check_retryable(record)
    except RunHistoryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    definition = _definition(record, flow_file)
    config = _config_of(record, config)
    new_id = uuid.uuid4().hex
    if not as_json:
        typer.echo(f"run {new_id} (a retry of run {run_id})", err=True)

    async def run(
        executor: FlowExecutor, store: RunHistory, options: ExecutionOptions
    ) -> FlowResult:
        return await retry_run(executor, store, run_id, definition=definition, options=options)

    options = ExecutionOptions(run_id=new_id, fail_fast=fail_fast)
    _run_again(source, config, concurrency, options, run, as_json)


@runs_app.command("cancel")
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run to cancel.")],
    history: HistoryOption = None,
    config: StoreConfigOption = None,
) -> None:
    """Cancel a running run: the process running it cancels it within a second.

    A run recorded as running whose process is gone (on this host) is marked cancelled at once,
    and so are its tasks recorded as running.
    """
    source = _source(history, config)
    record = _get(source, run_id)
    if record.paused and _with_history(source, lambda h: h.request_cancel(run_id)):
        typer.echo(
            f"run {run_id} was paused when its worker stopped: it will not be resumed (cancelled)"
        )
        return
    if record.status.is_final:
        typer.echo(
            f'error: run "{run_id}" already {record.status.value}; nothing to cancel', err=True
        )
        raise typer.Exit(EXIT_INVALID)
    if owner_alive(record.owner) is False:
        reason = f"cancelled while not running ({_GONE})"
        _with_history(source, lambda h: mark_cancelled(h, run_id, reason))
        typer.echo(f"run {run_id} was not running ({_GONE}): marked cancelled")
        return
    if not _with_history(source, lambda h: h.request_cancel(run_id)):
        typer.echo(f'error: run "{run_id}" is no longer running; nothing to cancel', err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"cancel requested for run {run_id}; the process running it will cancel it")
