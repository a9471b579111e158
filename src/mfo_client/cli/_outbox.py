"""`mfo dlq ...` and `mfo outbox stats`: look into the durable store and act on dead letters.

The store holds jobs of several kinds: "forward" (send an event to the MFO server) and one
"flow:<trigger>" per trigger (a flow run an event started). Dead letters of every kind share one
queue, each shown with its kind; `outbox stats` counts each kind on its own.

Every command opens the configured store in the admin role, so it works beside a running
`mfo serve` (which then takes up what `replay` put back). A store file that does not exist yet is
not created: the commands say so on stderr and answer as for an empty store. With the Redis
backend, the commands read the same keys the servers use (`store.prefix`).

Exit codes: 0 done, 1 the store failed or an id is unknown (or a confirmation was declined),
2 the configuration or the command line is wrong.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mfo_client.cli._app import app
from mfo_client.cli._common import EXIT_INVALID, ConfigOption, load_or_exit, with_admin_store
from mfo_client.config import Config, format_duration, parse_duration
from mfo_client.delivery import (
    FORWARD,
    DeadLetter,
    EventStore,
    OutboxStats,
    StoreError,
    trigger_of,
)

__all__ = ["dlq_app", "outbox_app", "parse_age"]

EXIT_FAILED = 1
ERROR_WIDTH = 60
"""At most this much of the last error shows in `dlq list`'s table; `--json` and `show` give all."""
ERROR_MIN_WIDTH = 10
_DAYS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)d(.*)")
"""Go durations stop at hours; `--older-than` also takes days in front (`7d`, `1d12h`)."""

T = TypeVar("T")

dlq_app = typer.Typer(
    help=(
        "Inspect, replay and purge dead letters: event forwards and flow runs that will not be "
        "retried by themselves."
    ),
    no_args_is_help=True,
)
outbox_app = typer.Typer(
    help="Look into the outbox of work waiting: events to forward and flow runs to start.",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")
app.add_typer(outbox_app, name="outbox")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _run(config: Config, action: Callable[[EventStore], Awaitable[T]], *, no_store: T) -> T:
    """`action` on the admin store; `no_store` if there is no store file yet. Exits 1 on errors."""
    path = Path(config.store.path)
    if config.store.backend == "sqlite" and not path.exists():
        typer.echo(f"note: no event store at {path} yet (`mfo serve` creates it)", err=True)
        return no_store
    try:
        return asyncio.run(with_admin_store(config, action))
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _confirm(question: str, *, yes: bool, declined: str) -> None:
    """Go on if `--yes` was given or the user agrees; never wait on a stdin nobody types into."""
    if yes:
        return
    if not _interactive():
        typer.echo(
            f'error: cannot ask "{question}": stdin is not a terminal; add --yes to go ahead',
            err=True,
        )
        raise typer.Exit(EXIT_INVALID)
    if not typer.confirm(question, default=False):
        typer.echo(declined)
        raise typer.Exit(EXIT_FAILED)


def _utc(seconds: float, *, iso: bool = False) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    if iso:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float) -> str:
    return format_duration(timedelta(seconds=int(seconds)))


def _letters(n: int) -> str:
    return f"{n} dead letter" + ("" if n == 1 else "s")


def _event_type(letter: DeadLetter) -> str | None:
    kind = letter.event.get("type")
    return None if kind is None else str(kind)


def _summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "kind": letter.kind,
        "event_id": letter.event_id,
        "source": letter.source,
        "event_type": _event_type(letter),
        "attempts": letter.attempts,
        "failed_at": _utc(letter.failed_at, iso=True),
        "last_error": letter.last_error,
    }


def _raw_body(raw: bytes) -> tuple[str, str]:
    """(encoding, text): the body as UTF-8 text when it is, else base64."""
    try:
        return "utf-8", raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(raw).decode("ascii")


def _print_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


@dlq_app.command("list")
def list_dead(
    config: ConfigOption,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most N.")] = 50,
    after: Annotated[
        str | None, typer.Option("--after", help="Start after this id (the last one shown).")
    ] = None,
    kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help='Only this kind: "forward" or "flow:<trigger>" (repeat for several).',
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List dead letters in the order they failed, a page at a time."""
    for kind in kinds or []:
        if kind != FORWARD and not trigger_of(kind):
            raise typer.BadParameter(
                f'{kind!r} is not a kind; use "forward" or "flow:<trigger>", e.g. flow:deploy',
                param_hint="'--kind'",
            )
    cfg = load_or_exit(config)

    async def fetch(store: EventStore) -> list[DeadLetter]:
        # One more than asked tells whether another page follows.
        return await store.list_dead(limit + 1, after, kinds or None)

    no_store: list[DeadLetter] = []
    letters = _run(cfg, fetch, no_store=no_store)
    more = len(letters) > limit
    letters = letters[:limit]
    if as_json:
        _print_json([_summary(letter) for letter in letters])
        return
    if not letters:
        typer.echo(
            "The dead-letter queue is empty."
            if after is None
            else f"No more dead letters after {after}."
        )
        return
    headers = ("ID", "Kind", "Source", "Event type", "Attempts", "Failed at (UTC)", "Last error")
    rows = [
        (
            letter.id,
            letter.kind,
            letter.source,
            _event_type(letter) or "-",
            str(letter.attempts),
            _utc(letter.failed_at),
            " ".join(letter.last_error.split()),
        )
        for letter in letters
    ]
    # One line per letter and every id whole: only the error gives way to a narrow terminal.
    # Rich would squeeze any column, so the widths are set here (each column adds 3 characters
    # of padding and border, the table 1).
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers[:-1])]
    console = Console()
    room = console.width - sum(widths) - 3 * len(headers) - 1
    widths.append(max(ERROR_MIN_WIDTH, min(ERROR_WIDTH, room, max(len(r[-1]) for r in rows))))
    console.width = max(console.width, sum(widths) + 3 * len(headers) + 1)
    table = Table()
    for header, width in zip(headers, widths, strict=True):
        table.add_column(
            header,
            width=width,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if header == "Attempts" else "left",
        )
    for row in rows:
        table.add_row(*map(Text, row))
    console.print(table)
    if more:
        typer.echo(f"More: mfo dlq list --after {letters[-1].id}", err=True)


@dlq_app.command("show")
def show(
    id: Annotated[str, typer.Argument(help="The dead letter's id.", show_default=False)],
    config: ConfigOption,
    as_json: JsonOption = False,
) -> None:
    """Everything about one dead letter: the event, the attempts, the error and the raw body."""
    cfg = load_or_exit(config)
    letter = _run(cfg, lambda store: store.get_dead(id), no_store=None)
    if letter is None:
        typer.echo(f"error: no dead letter with id {id!r}", err=True)
        raise typer.Exit(EXIT_FAILED)
    encoding, body = _raw_body(letter.raw_body)
    if as_json:
        _print_json(
            {
                **_summary(letter),
                "received_at": _utc(letter.received_at, iso=True),
                "event": letter.event,
                "raw_body": body,
                "raw_body_encoding": encoding,
            }
        )
        return
    typer.echo(
        f"Dead letter {letter.id}\n"
        f"  kind:         {letter.kind}\n"
        f"  event id:     {letter.event_id}\n"
        f"  source:       {letter.source}\n"
        f"  event type:   {_event_type(letter) or '-'}\n"
        f"  attempts:     {letter.attempts}\n"
        f"  received at:  {_utc(letter.received_at)} UTC\n"
        f"  failed at:    {_utc(letter.failed_at)} UTC\n"
        f"\nLast error:\n{letter.last_error}\n"
        f"\nEvent:\n{json.dumps(letter.event, indent=2, ensure_ascii=False)}\n"
        f"\nRaw body ({len(letter.raw_body)} bytes, "
        + ("UTF-8 text" if encoding == "utf-8" else "not UTF-8, shown as base64")
        + f"):\n{body}"
    )


@dlq_app.command("replay")
def replay(
    config: ConfigOption,
    ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="ID", help="Ids of the dead letters.", show_default=False),
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
    yes: YesOption = False,
) -> None:
    """Put dead letters back in the outbox, attempts reset; a running `mfo serve` takes them up
    again, each as what it was (a forward, or a run of its trigger's flow).

    All or nothing: if any ID is unknown, names the unknown ones, replays none and exits 1.
    `--all` asks for confirmation first unless `--yes` is given.
    """
    if ids and replay_all:
        raise typer.BadParameter("give dead-letter ids or --all, not both", param_hint="ID")
    if not ids and not replay_all:
        raise typer.BadParameter("give the ids of the dead letters, or --all", param_hint="ID")
    cfg = load_or_exit(config)
    if replay_all:
        _confirm("Replay every dead letter?", yes=yes, declined="Nothing replayed.")
        replayed = _run(cfg, lambda store: store.replay(None), no_store=0)
        _replayed(replayed)
        return
    wanted = list(dict.fromkeys(ids or []))

    async def replay_if_all_exist(store: EventStore) -> tuple[list[str], int]:
        unknown = [id for id in wanted if await store.get_dead(id) is None]
        return (unknown, 0) if unknown else ([], await store.replay(wanted))

    unknown, replayed = _run(cfg, replay_if_all_exist, no_store=(wanted, 0))
    if unknown:
        typer.echo(
            f"error: no dead letter with id {', '.join(map(repr, unknown))}; nothing replayed",
            err=True,
        )
        raise typer.Exit(EXIT_FAILED)
    _replayed(replayed)


def _replayed(n: int) -> None:
    typer.echo(f"Replayed {_letters(n)}" + ("; a running `mfo serve` takes them up." if n else "."))


def parse_age(text: str) -> float:
    """Seconds in `7d`, `1d12h`, or anything `parse_duration` takes (`36h`, `90m`)."""
    days = _DAYS.fullmatch(text.strip())
    try:
        if days is None:
            return parse_duration(text).total_seconds()
        number, rest = days.groups()
        return float(number) * 86400 + (parse_duration(rest).total_seconds() if rest else 0.0)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a duration; use days, hours or minutes such as 7d, 1d12h, 36h, 90m"
        ) from None


@dlq_app.command("purge")
def purge(
    config: ConfigOption,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Only those that failed longer ago than this (7d, 36h, 90m).",
            show_default=False,
        ),
    ] = None,
    yes: YesOption = False,
) -> None:
    """Delete dead letters for good: all, or those that failed longer ago than --older-than.

    Asks for confirmation first unless `--yes` is given.
    """
    seconds = None
    if older_than is not None:
        try:
            seconds = parse_age(older_than)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--older-than'") from None
    cfg = load_or_exit(config)
    which = (
        "every dead letter"
        if older_than is None
        else f"the dead letters that failed more than {older_than} ago"
    )
    _confirm(f"Delete {which} for good?", yes=yes, declined="Nothing purged.")
    purged = _run(cfg, lambda store: store.purge_dead(seconds), no_store=0)
    typer.echo(f"Purged {_letters(purged)}.")


@outbox_app.command("stats")
def stats(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Jobs pending, in flight, done and dead, and how long the oldest has waited, per kind.

    Forwards come first, then each trigger's flow runs ("flow:<trigger>") that have work waiting
    or dead. In JSON, the top-level counts are the forwards' (as before flow runs existed),
    `kinds` lists every kind with its counts, and `oldest_pending_age` is in seconds (null when
    nothing waits).
    """
    cfg = load_or_exit(config)

    async def fetch(store: EventStore) -> list[tuple[str, OutboxStats]]:
        kinds = [FORWARD, *(kind for kind in await store.kinds() if kind != FORWARD)]
        return [(kind, await store.stats(kinds=[kind])) for kind in kinds]

    empty = OutboxStats(pending=0, in_flight=0, delivered=0, dead=0, oldest_pending_age=None)
    per_kind = _run(cfg, fetch, no_store=[(FORWARD, empty)])
    if as_json:
        forward = dict(per_kind)[FORWARD]
        _print_json(
            {
                **asdict(forward),
                "kinds": [{"kind": kind, **asdict(counts)} for kind, counts in per_kind],
            }
        )
        return
    typer.echo("\n\n".join(_stats_block(kind, counts) for kind, counts in per_kind))


def _stats_block(kind: str, counts: OutboxStats) -> str:
    age = counts.oldest_pending_age
    done = "delivered:" if kind == FORWARD else "done:"
    return (
        f"kind:                {kind}\n"
        f"pending:             {counts.pending}\n"
        f"in flight:           {counts.in_flight}\n"
        f"{done:<21}{counts.delivered}\n"
        f"dead:                {counts.dead}\n"
        f"oldest pending age:  {'-' if age is None else _age(age)}"
    )
