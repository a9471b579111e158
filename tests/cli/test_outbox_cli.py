"""`mfo dlq ...` and `mfo outbox stats` against a real SQLite store in a temporary directory."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mfo_client.cli import _outbox, app
from mfo_client.cli._outbox import parse_age
from mfo_client.delivery import FlowJob, IncomingEvent, SQLiteStore, flow_kind

DAY = 86400.0


@dataclass(frozen=True)
class Setup:
    config: Path
    store: Path


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    store = tmp_path / "state" / "mfo.db"
    config = tmp_path / "mfo.yaml"
    config.write_text(f"store:\n  path: {json.dumps(str(store))}\n")
    return Setup(config, store)


def incoming(id: str, type: str = "push", raw_body: bytes | None = None) -> IncomingEvent:
    return IncomingEvent(
        id=id,
        source="github",
        delivery_id=f"delivery-{id}",
        event={"type": type, "data": {"id": id}},
        raw_body=f'{{"id": "{id}"}}'.encode() if raw_body is None else raw_body,
        headers={},
        received_at=time.time(),
    )


def kill(store: Path, *failures: tuple[IncomingEvent, str], ago: float = 0.0) -> None:
    """Accept the events, lease them and dead-letter them in this order, `ago` seconds back."""

    async def run() -> None:
        async with SQLiteStore(store, clock=lambda: time.time() - ago) as db:
            for item, _ in failures:
                await db.accept(item)
            leases = {lease.id: lease for lease in await db.lease("test", len(failures), 60)}
            for item, error in failures:
                await db.dead_letter(leases[item.id], error)

    asyncio.run(run())


def kill_runs(store: Path, *failures: tuple[IncomingEvent, str, str]) -> None:
    """Accept each event with one "deploy" run (of the given id) and dead-letter that run."""

    async def run() -> None:
        async with SQLiteStore(store) as db:
            for item, run_id, _ in failures:
                await db.accept(item, [FlowJob(run_id, "deploy")])
            runs = await db.lease("test", len(failures), 60, kinds=[flow_kind("deploy")])
            leases = {lease.id: lease for lease in runs}
            for _, run_id, error in failures:
                await db.dead_letter(leases[run_id], error)

    asyncio.run(run())


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.upper().startswith("MFO_")}
    # A wide, colourless console, whatever terminal runs the tests.
    env = {**unset, "COLUMNS": "200", "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
    result = CliRunner().invoke(app, list(args), env=env, input=input)
    return result.exit_code, result.stdout, result.stderr


def run_mfo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MFO_")}
    return subprocess.run(
        [sys.executable, "-m", "mfo_client", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def dead_ids(setup: Setup) -> list[str]:
    code, out, err = invoke("dlq", "list", "--json", "--config", str(setup.config))
    assert code == 0, err
    return [letter["id"] for letter in json.loads(out)]


def stats(setup: Setup) -> dict[str, object]:
    code, out, err = invoke("outbox", "stats", "--json", "--config", str(setup.config))
    assert code == 0, err
    result: dict[str, object] = json.loads(out)
    return result


# dlq list


def test_list_shows_id_type_attempts_and_error(setup: Setup) -> None:
    kill(
        setup.store,
        (incoming("evt-1", "push"), "422 missing field repository"),
        (incoming("evt-2", "issues.opened"), "400 bad event"),
    )

    code, out, err = invoke("dlq", "list", "--config", str(setup.config))

    assert (code, err) == (0, "")
    rows = [line for line in out.splitlines() if "evt-" in line]
    assert len(rows) == 2
    assert "evt-1" in rows[0]
    assert "push" in rows[0]
    assert "422 missing field repository" in rows[0]
    assert re.search(r"│\s+1 │", rows[0])  # one attempt
    assert "evt-2" in rows[1]
    assert "issues.opened" in rows[1]
    assert "400 bad event" in rows[1]


def test_list_truncates_a_long_error_but_json_has_it_whole(setup: Setup) -> None:
    error = "503 upstream unavailable: " + "x" * 300
    kill(setup.store, (incoming("evt-1"), error))

    _, table, _ = invoke("dlq", "list", "--config", str(setup.config))
    code, out, _ = invoke("dlq", "list", "--json", "--config", str(setup.config))

    assert "503 upstream unavailable" in table
    assert "x" * 300 not in table
    assert "…" in table
    assert code == 0
    (letter,) = json.loads(out)
    assert letter["id"] == "evt-1"
    assert letter["source"] == "github"
    assert letter["event_type"] == "push"
    assert letter["attempts"] == 1
    assert letter["last_error"] == error
    assert letter["failed_at"].endswith("Z")


def test_list_pages_with_limit_and_after(setup: Setup) -> None:
    kill(setup.store, *((incoming(f"evt-{n}"), "500") for n in (1, 2, 3)))

    code, first, hint = invoke("dlq", "list", "--limit", "2", "--config", str(setup.config))
    _, second, _ = invoke("dlq", "list", "--after", "evt-2", "--config", str(setup.config))
    _, last, _ = invoke("dlq", "list", "--after", "evt-3", "--config", str(setup.config))

    assert code == 0
    assert "evt-1" in first and "evt-2" in first and "evt-3" not in first
    assert "mfo dlq list --after evt-2" in hint
    assert "evt-3" in second and "evt-2" not in second
    assert "No more dead letters after evt-3." in last


def test_list_after_an_id_that_is_gone_says_so(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1"), "500"))

    code, _, err = invoke("dlq", "list", "--after", "evt-9", "--config", str(setup.config))

    assert code == 1
    assert err.startswith("error: ")
    assert "evt-9" in err


def test_an_empty_queue_says_so(setup: Setup) -> None:
    kill(setup.store)

    code, out, _ = invoke("dlq", "list", "--config", str(setup.config))
    _, json_out, _ = invoke("dlq", "list", "--json", "--config", str(setup.config))

    assert code == 0
    assert out.strip() == "The dead-letter queue is empty."
    assert json.loads(json_out) == []


def test_dlq_list_in_a_real_process(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-real", "release.published"), "422 invalid payload"))

    result = run_mfo("dlq", "list", "--config", str(setup.config))

    assert result.returncode == 0, result.stderr
    assert "evt-real" in result.stdout
    assert "release.published" in result.stdout


def test_dead_flow_runs_are_listed_with_their_kind(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1"), "422 bad event"))
    kill_runs(setup.store, (incoming("evt-2"), "run-2", "step 'deploy' failed"))

    code, out, _ = invoke("dlq", "list", "--config", str(setup.config))
    _, json_out, _ = invoke("dlq", "list", "--json", "--config", str(setup.config))
    _, runs, _ = invoke(
        "dlq", "list", "--json", "--kind", "flow:deploy", "--config", str(setup.config)
    )
    _, forwards, _ = invoke("dlq", "list", "--kind", "forward", "--config", str(setup.config))

    assert code == 0
    forward_row, run_row = (line for line in out.splitlines() if "evt-" in line or "run-" in line)
    assert re.search(r"evt-1\s+│ forward\s+│", forward_row)
    assert re.search(r"run-2\s+│ flow:deploy │", run_row)
    assert [(d["id"], d["kind"], d["event_id"]) for d in json.loads(json_out)] == [
        ("evt-1", "forward", "evt-1"),
        ("run-2", "flow:deploy", "evt-2"),
    ]
    assert [d["id"] for d in json.loads(runs)] == ["run-2"]
    assert "evt-1" in forwards and "run-2" not in forwards


def test_list_with_a_kind_that_is_none_says_what_is(setup: Setup) -> None:
    code, _, err = invoke("dlq", "list", "--kind", "deploy", "--config", str(setup.config))

    assert code == 2
    assert "--kind" in err
    assert "flow:<trigger>" in err


# dlq show


def test_show_prints_event_error_times_and_text_body(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1", "push", b'{"ref": "main"}'), "422 missing repository"))

    code, out, err = invoke("dlq", "show", "evt-1", "--config", str(setup.config))

    assert (code, err) == (0, "")
    assert "Dead letter evt-1" in out
    assert "422 missing repository" in out
    assert "attempts:     1" in out
    assert "received at:" in out and "failed at:" in out
    assert '"type": "push"' in out  # pretty JSON, one key a line
    assert "UTF-8 text" in out
    assert '{"ref": "main"}' in out


def test_show_gives_a_binary_body_as_base64(setup: Setup) -> None:
    raw = b"\xff\xfe\x00binary"
    kill(setup.store, (incoming("evt-1", raw_body=raw), "415"))

    _, out, _ = invoke("dlq", "show", "evt-1", "--config", str(setup.config))
    code, json_out, _ = invoke("dlq", "show", "evt-1", "--json", "--config", str(setup.config))

    encoded = base64.b64encode(raw).decode()
    assert "not UTF-8, shown as base64" in out
    assert encoded in out
    assert code == 0
    letter = json.loads(json_out)
    assert letter["raw_body_encoding"] == "base64"
    assert base64.b64decode(letter["raw_body"]) == raw
    assert letter["event"] == {"type": "push", "data": {"id": "evt-1"}}
    assert letter["last_error"] == "415"
    assert letter["attempts"] == 1


def test_show_a_dead_flow_run_names_its_kind_and_event(setup: Setup) -> None:
    kill_runs(setup.store, (incoming("evt-7", "release.published"), "run-7", "step failed"))

    code, out, _ = invoke("dlq", "show", "run-7", "--config", str(setup.config))
    _, json_out, _ = invoke("dlq", "show", "run-7", "--json", "--config", str(setup.config))

    assert code == 0
    assert "Dead letter run-7" in out
    assert re.search(r"kind:\s+flow:deploy\n", out)
    assert re.search(r"event id:\s+evt-7\n", out)
    assert '"type": "release.published"' in out
    letter = json.loads(json_out)
    assert (letter["kind"], letter["event_id"], letter["last_error"]) == (
        "flow:deploy",
        "evt-7",
        "step failed",
    )


def test_show_an_unknown_id_fails_naming_it(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1"), "500"))

    code, out, err = invoke("dlq", "show", "evt-404", "--config", str(setup.config))

    assert code == 1
    assert out == ""
    assert "evt-404" in err


# dlq replay


def test_replay_moves_the_named_letters_back_to_the_outbox(setup: Setup) -> None:
    kill(setup.store, *((incoming(f"evt-{n}"), "500") for n in (1, 2, 3)))

    code, out, err = invoke("dlq", "replay", "evt-1", "evt-3", "--config", str(setup.config))

    assert (code, err) == (0, "")
    assert out.startswith("Replayed 2 dead letters")
    assert dead_ids(setup) == ["evt-2"]
    assert stats(setup)["pending"] == 2
    assert stats(setup)["dead"] == 1


def test_a_replayed_flow_run_waits_as_a_flow_run(setup: Setup) -> None:
    kill_runs(setup.store, (incoming("evt-1"), "run-1", "step failed"))

    code, out, _ = invoke("dlq", "replay", "run-1", "--config", str(setup.config))

    assert code == 0
    assert out.startswith("Replayed 1 dead letter")
    kinds = stats(setup)["kinds"]
    assert isinstance(kinds, list)
    assert [(k["kind"], k["pending"], k["dead"]) for k in kinds] == [
        ("forward", 1, 0),
        ("flow:deploy", 1, 0),
    ]


def test_replay_with_an_unknown_id_replays_nothing(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1"), "500"))

    code, _, err = invoke("dlq", "replay", "evt-1", "evt-404", "--config", str(setup.config))

    assert code == 1
    assert "evt-404" in err
    assert "evt-1" not in err
    assert "nothing replayed" in err
    assert dead_ids(setup) == ["evt-1"]


def test_replay_all_refuses_without_yes_when_it_cannot_ask(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1"), "500"), (incoming("evt-2"), "500"))

    code, out, err = invoke("dlq", "replay", "--all", "--config", str(setup.config))

    assert code == 2
    assert "--yes" in err
    assert "Replayed" not in out
    assert dead_ids(setup) == ["evt-1", "evt-2"]


def test_replay_all_refuses_in_a_real_process_without_stdin(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1"), "500"))

    result = run_mfo("dlq", "replay", "--all", "--config", str(setup.config))

    assert result.returncode == 2
    assert "stdin is not a terminal" in result.stderr
    assert "--yes" in result.stderr
    assert dead_ids(setup) == ["evt-1"]


def test_replay_all_with_yes(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1"), "500"), (incoming("evt-2"), "500"))

    code, out, _ = invoke("dlq", "replay", "--all", "--yes", "--config", str(setup.config))

    assert code == 0
    assert out.startswith("Replayed 2 dead letters")
    assert dead_ids(setup) == []
    assert stats(setup)["pending"] == 2


@pytest.mark.parametrize(("answer", "code", "left"), [("n\n", 1, ["evt-1"]), ("y\n", 0, [])])
def test_replay_all_asks_at_a_terminal(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, answer: str, code: int, left: list[str]
) -> None:
    kill(setup.store, (incoming("evt-1"), "500"))
    monkeypatch.setattr(_outbox, "_interactive", lambda: True)

    result = invoke("dlq", "replay", "--all", "--config", str(setup.config), input=answer)

    assert result[0] == code
    assert "Replay every dead letter?" in result[1]
    assert dead_ids(setup) == left


def test_replay_needs_ids_or_all(setup: Setup) -> None:
    code, _, err = invoke("dlq", "replay", "--config", str(setup.config))

    assert code == 2
    assert "--all" in err


# dlq purge


def test_purge_older_than_days_keeps_the_recent_ones(setup: Setup) -> None:
    kill(setup.store, (incoming("old-1"), "500"), (incoming("old-2"), "500"), ago=10 * DAY)
    kill(setup.store, (incoming("new-1"), "500"), ago=DAY)

    code, out, _ = invoke(
        "dlq", "purge", "--older-than", "7d", "--yes", "--config", str(setup.config)
    )

    assert code == 0
    assert out.strip() == "Purged 2 dead letters."
    assert dead_ids(setup) == ["new-1"]


def test_purge_takes_go_durations_too(setup: Setup) -> None:
    kill(setup.store, (incoming("old-1"), "500"), ago=2 * DAY)
    kill(setup.store, (incoming("new-1"), "500"))

    code, out, _ = invoke(
        "dlq", "purge", "--older-than", "36h", "--yes", "--config", str(setup.config)
    )

    assert code == 0
    assert out.strip() == "Purged 1 dead letter."
    assert dead_ids(setup) == ["new-1"]


def test_purge_everything_refuses_without_yes_then_deletes_with_it(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1"), "500"), (incoming("evt-2"), "500"))

    refused = invoke("dlq", "purge", "--config", str(setup.config))
    assert refused[0] == 2
    assert "--yes" in refused[2]
    assert dead_ids(setup) == ["evt-1", "evt-2"]

    code, out, _ = invoke("dlq", "purge", "--yes", "--config", str(setup.config))
    assert code == 0
    assert out.strip() == "Purged 2 dead letters."
    assert stats(setup)["dead"] == 0


def test_purge_with_a_bad_duration_names_the_option(setup: Setup) -> None:
    kill(setup.store, (incoming("evt-1"), "500"))

    code, _, err = invoke(
        "dlq", "purge", "--older-than", "a week", "--yes", "--config", str(setup.config)
    )

    assert code == 2
    assert "--older-than" in err
    assert "7d" in err  # what is allowed
    assert dead_ids(setup) == ["evt-1"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 7 * DAY), ("1.5d", 1.5 * DAY), ("1d12h", 1.5 * DAY), ("36h", 1.5 * DAY), ("90m", 5400)],
)
def test_older_than_takes_days_and_go_durations(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "-7d", "7x", "7dd", "1h7d", "a week"])
def test_older_than_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_age(text)


# outbox stats


def test_stats_counts_every_state(setup: Setup) -> None:
    kill(setup.store, (incoming("dead-1"), "500"))

    async def fill() -> None:
        # Queued 192.2 s ago by the store's clock, so the oldest waits "3m12s".
        async with SQLiteStore(setup.store, clock=lambda: time.time() - 192.2) as db:
            for id in ("done-1", "busy-1", "wait-1", "wait-2"):
                await db.accept(incoming(id))
            done, busy = await db.lease("test", 2, 3600)
            await db.complete(done)
            assert busy.id == "busy-1"

    asyncio.run(fill())

    counts = stats(setup)
    code, out, _ = invoke("outbox", "stats", "--config", str(setup.config))

    forward = {"pending": 2, "in_flight": 1, "delivered": 1, "dead": 1}
    assert {k: v for k, v in counts.items() if k not in ("oldest_pending_age", "kinds")} == forward
    assert counts["kinds"] == [
        {"kind": "forward", **forward, "oldest_pending_age": counts["oldest_pending_age"]}
    ]
    age = counts["oldest_pending_age"]
    assert isinstance(age, float)
    assert 192 <= age < 250
    assert code == 0
    assert re.search(r"pending:\s+2\n", out)
    assert re.search(r"in flight:\s+1\n", out)
    assert re.search(r"oldest pending age:\s+3m(1[2-9]|[2-5]\d)s\n", out)


def test_stats_of_a_store_not_created_yet_are_zeros(setup: Setup) -> None:
    code, out, err = invoke("outbox", "stats", "--json", "--config", str(setup.config))

    assert code == 0
    zeros = {"pending": 0, "in_flight": 0, "delivered": 0, "dead": 0, "oldest_pending_age": None}
    assert json.loads(out) == {**zeros, "kinds": [{"kind": "forward", **zeros}]}
    assert f"no event store at {setup.store} yet" in err
    assert not setup.store.exists()


def test_stats_count_each_kind_on_its_own(setup: Setup) -> None:
    kill_runs(setup.store, (incoming("evt-1"), "run-1", "step failed"))

    async def fill() -> None:
        async with SQLiteStore(setup.store) as db:
            await db.accept(incoming("evt-2"), [FlowJob("run-2", "deploy")])

    asyncio.run(fill())

    counts = stats(setup)
    code, out, _ = invoke("outbox", "stats", "--config", str(setup.config))

    assert (counts["pending"], counts["dead"]) == (2, 0)  # the forwards, as before
    kinds = counts["kinds"]
    assert isinstance(kinds, list)
    assert [(k["kind"], k["pending"], k["in_flight"], k["dead"]) for k in kinds] == [
        ("forward", 2, 0, 0),
        ("flow:deploy", 1, 0, 1),
    ]
    assert code == 0
    forward, deploy = out.split("\n\n")
    assert re.search(r"kind:\s+forward\n", forward)
    assert re.search(r"pending:\s+2\n", forward)
    assert re.search(r"delivered:\s+0\n", forward)
    assert re.search(r"kind:\s+flow:deploy\n", deploy)
    assert re.search(r"pending:\s+1\n", deploy)
    assert re.search(r"done:\s+0\n", deploy)
    assert re.search(r"dead:\s+1\n", deploy)


def test_a_store_that_cannot_be_opened_is_an_error(setup: Setup) -> None:
    setup.store.parent.mkdir()
    setup.store.write_bytes(b"this is not an SQLite database" * 100)

    code, out, err = invoke("outbox", "stats", "--config", str(setup.config))

    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert str(setup.store) in err


def test_a_bad_config_exits_2(tmp_path: Path) -> None:
    code, _, err = invoke("dlq", "list", "--config", str(tmp_path / "missing.yaml"))

    assert code == 2
    assert "error:" in err
