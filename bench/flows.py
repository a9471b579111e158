"""Scheduler overhead of the flow executor against OpenStack TaskFlow's parallel engine, in one run.

What is measured. No-op tasks (`async def noop(ctx): return None`) on three shapes:

  chain        n tasks, each depending on the one before
  fan-out/in   one source, n tasks depending on it, one sink depending on all of them (n + 2)
  grid         k x k tasks, each depending on its left and upper neighbour (32x32, 100x100)

at n = 1,000 and 10,000, run by `FlowExecutor(registry, concurrency=64)` with run history off.
Per-task overhead is the wall time of `execute_flow` divided by the tasks, the median of --rounds
runs after one warm-up run; each round runs every shape once, so a burst of noise from elsewhere
on the machine is spread over the shapes. The definitions are validated once, before the clock
starts. The executor analyses a definition's graph on its first run and keeps it for the next
runs of the same definition object (as a worker running one trigger's flow again and again
does), so the warm-up run pays for it and the timed runs do not; each run's own state (results,
counters, the ready heap) is inside the time. CPU time of the process per task is shown beside,
and the 10k/1k cost in CPU time too: when other processes share the core, wall time swells and
the CPU columns tell what the executor itself costs. When `ExecutionOptions` has a `history`
field, each 1,000-task run is followed by one with history on (`SQLiteRunHistory` in a fresh
temp file, default fsync), shown as `+history`; until then the benchmark says 'history: not
available yet'.

The peer, in the same run: TaskFlow (PyPI `taskflow`), installed for the benchmark only into a
virtualenv of its own under the temp dir (created on the first run with this interpreter, reused
after; delete it to upgrade) and driven by a script in a child process that prints JSON. It runs
the same graphs at 1,000 tasks only (it takes seconds per flow): `graph_flow.Flow` with an
explicit `link` per edge, `taskflow.task.Task` subclasses whose `execute` returns None, and
`engines.run(flow, engine="parallel", max_workers=64)`, timed whole (it compiles the flow, records
state in its default in-memory persistence, which cannot be switched off, and runs the tasks on
its thread pool), one timed run per shape after a 3-task warm-up. Both sides check that every
task ran.

Everything runs pinned to one core (sched_setaffinity; the child processes inherit it), so both
engines get the same single core; our executor runs async tasks on one thread anyway.

Peak RSS: a child process builds and runs the 100x100 grid once and reports its VmHWM (peak
resident set), and what it was after the imports, before the flow was built.

    .venv/bin/python bench/flows.py                  (about a minute; the first run also
                                                      installs taskflow, about 10 s)
    .venv/bin/python bench/flows.py --no-peer --rounds 9
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import machine_busy
from mfo_client.flows import (
    ExecutionOptions,
    FlowContext,
    FlowDefinition,
    FlowExecutor,
    RunStatus,
    TaskRegistry,
    TaskStatus,
)

CONCURRENCY = 64
SHAPES = ("chain", "fan-out/in", "grid")
SMALL, LARGE = 1_000, 10_000
SIZES = (SMALL, LARGE)
GOAL_US_PER_TASK = 20.0
GOAL_BELOW_PEER = 100.0
GOAL_GROWTH = 12.0
GOAL_RSS_MB = 250.0
BUSY_BEFORE = 0.1
PEER_VENV = Path(tempfile.gettempdir()) / "mfo-bench-taskflow-venv"
INSTALL_TIMEOUT = 300.0
PEER_TIMEOUT = 180.0

Graph = list[tuple[str, list[str]]]
"""(task id, its dependencies) in file order: what both engines are given."""


def build(shape: str, size: int) -> Graph:
    if shape == "chain":
        return [(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(size)]
    if shape == "fan-out/in":
        middle = [f"t{i}" for i in range(size)]
        return [("source", []), *((tid, ["source"]) for tid in middle), ("sink", middle)]
    if shape == "grid":
        side = round(math.sqrt(size))
        graph: Graph = []
        for row in range(side):
            for col in range(side):
                deps = [f"g{row}_{col - 1}"] if col else []
                deps += [f"g{row - 1}_{col}"] if row else []
                graph.append((f"g{row}_{col}", deps))
        return graph
    raise ValueError(f"unknown shape {shape!r}")


def label(shape: str, size: int) -> str:
    if shape == "grid":
        side = round(math.sqrt(size))
        return f"grid {side}x{side}"
    return shape


def definition(shape: str, graph: Graph) -> FlowDefinition:
    tasks = [{"id": tid, "type": "noop", "dependencies": deps} for tid, deps in graph]
    return FlowDefinition.model_validate({"name": f"bench-{shape}", "tasks": tasks})


async def noop(ctx: FlowContext) -> None:
    return None


def executor() -> FlowExecutor:
    registry = TaskRegistry()
    registry.register("noop", lambda config: noop)
    return FlowExecutor(registry, concurrency=CONCURRENCY)


def history_store(workdir: Path) -> tuple[Any, str]:
    """A fresh SQLite run history in `workdir` to measure with, or None; and a note to print.

    Looked up by name, not imported: the benchmark must run on trees with and without history.
    """
    if "history" not in {f.name for f in dataclasses.fields(ExecutionOptions)}:
        return None, "history: not available yet"
    store = getattr(importlib.import_module("mfo_client.flows"), "SQLiteRunHistory", None)
    if store is None:
        return None, "history: ExecutionOptions.history exists, SQLiteRunHistory not; not measured"
    note = "history: +history records each run in SQLiteRunHistory (a fresh file, default fsync)"
    return store(workdir / "runs.db"), note


async def timed_run(
    flows: FlowExecutor, defn: FlowDefinition, options: ExecutionOptions
) -> tuple[float, float]:
    """(wall, CPU) seconds of one run, CPU of this whole process; every task must succeed."""
    cpu, started = time.process_time(), time.perf_counter()
    result = await flows.execute_flow(defn, options=options)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    bad = [r.id for r in result.tasks.values() if r.status is not TaskStatus.SUCCEEDED]
    if result.status is not RunStatus.SUCCEEDED or bad or len(result.tasks) != len(defn.tasks):
        raise SystemExit(f"{defn.name}: {result.status.value}, {len(bad)} tasks not succeeded")
    return elapsed, cpu


@dataclasses.dataclass
class Ours:
    tasks: int
    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)
    history: list[float] = dataclasses.field(default_factory=list)
    """Wall seconds with run history on."""

    @property
    def seconds(self) -> float:
        return statistics.median(self.wall)

    def us_per_task(self, samples: list[float] | None = None) -> float:
        return statistics.median(self.wall if samples is None else samples) / self.tasks * 1e6


async def measure_ours(rounds: int) -> tuple[dict[tuple[str, int], Ours], str]:
    flows = executor()
    runs = [
        (shape, size, definition(shape, build(shape, size))) for size in SIZES for shape in SHAPES
    ]
    results = {(shape, size): Ours(len(defn.tasks)) for shape, size, defn in runs}
    with tempfile.TemporaryDirectory(prefix="mfo-flows-bench-") as tmp:
        store, history_note = history_store(Path(tmp))
        off = ExecutionOptions()
        with_history: dict[str, Any] = {"history": store}
        on = ExecutionOptions(**with_history) if store is not None else None
        try:
            # Round 0 is the warm-up.
            for round_no in range(rounds + 1):
                for shape, size, defn in runs:
                    ours = results[shape, size]
                    wall, cpu = await timed_run(flows, defn, off)
                    if round_no:
                        ours.wall.append(wall)
                        ours.cpu.append(cpu)
                    if on is not None and size == SMALL:
                        wall, _ = await timed_run(flows, defn, on)
                        if round_no:
                            ours.history.append(wall)
        finally:
            flows.close()
            if store is not None:
                await store.close()
    return results, history_note


PEER_SCRIPT = """
import importlib.metadata, json, sys, time
from taskflow import engines, task
from taskflow.patterns import graph_flow

executed = []

class Noop(task.Task):
    def execute(self):
        executed.append(self.name)  # list.append is atomic: the engine runs tasks on threads

def build(graph):
    flow = graph_flow.Flow("bench")
    tasks = {tid: Noop(name=tid) for tid, _ in graph}
    flow.add(*tasks.values())
    for tid, deps in graph:
        for dep in deps:
            flow.link(tasks[dep], tasks[tid])
    return flow

spec = json.load(sys.stdin)
workers = spec["workers"]
engines.run(build([["w0", []], ["w1", ["w0"]], ["w2", ["w1"]]]), engine="parallel",
            max_workers=workers)
out = {"version": importlib.metadata.version("taskflow"), "shapes": {}}
for name, graph in spec["shapes"].items():
    flow = build(graph)
    executed.clear()
    started = time.perf_counter()
    engines.run(flow, engine="parallel", max_workers=workers)
    elapsed = time.perf_counter() - started
    out["shapes"][name] = {"tasks": len(graph), "ran": len(set(executed)), "seconds": elapsed}
print(json.dumps(out))
"""


def peer_python(venv: Path) -> tuple[Path | None, str]:
    """The virtualenv's interpreter with taskflow importable, installing it the first time."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import taskflow.engines"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, f"reused {venv}"
    print(f"installing taskflow into {venv} (first run only)...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "taskflow"],
    ]
    try:
        for step in steps:
            subprocess.run(
                step, check=True, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
            )
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-3:]
        return None, f"`{' '.join(exc.cmd)}` failed: {' / '.join(tail)}"
    except (subprocess.TimeoutExpired, OSError) as exc:
        return None, f"installing taskflow failed: {exc}"
    return python, f"installed into {venv}"


def measure_peer(venv: Path) -> tuple[dict[str, float], str]:
    """Seconds per 1,000-task shape on TaskFlow, and a line saying what ran (or why not)."""
    python, note = peer_python(venv)
    if python is None:
        return {}, f"peer: not measured, {note}"
    spec = {"workers": CONCURRENCY, "shapes": {s: build(s, SMALL) for s in SHAPES}}
    try:
        proc = subprocess.run(
            [str(python), "-c", PEER_SCRIPT],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=PEER_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return {}, f"peer: not measured, TaskFlow took over {PEER_TIMEOUT:g}s"
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " / ".join(proc.stderr.strip().splitlines()[-3:])
        return {}, f"peer: not measured, the TaskFlow script exited {proc.returncode}: {tail}"
    out = json.loads(lines[-1])
    for name, shape in out["shapes"].items():
        if shape["ran"] != shape["tasks"]:
            return {}, f"peer: {name}: ran {shape['ran']} of {shape['tasks']} tasks"
    seconds = {name: float(shape["seconds"]) for name, shape in out["shapes"].items()}
    how = f"engines.run(engine='parallel', max_workers={CONCURRENCY})"
    return seconds, f"peer: TaskFlow {out['version']}, {how}, one run per shape ({note})"


def vm_hwm_kib() -> int:
    """This process's peak resident set ("high water mark"), KiB.

    Not `ru_maxrss`: Linux carries that across exec, so a child started by a big parent would
    report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc/self/status")


def rss_child() -> None:
    """In the child: run the 10,000-task grid once; print the peak RSS before and after, KiB."""
    before = vm_hwm_kib()
    defn = definition("grid", build("grid", LARGE))
    flows = executor()
    result = asyncio.run(flows.execute_flow(defn))
    flows.close()
    status = result.status.value
    print(json.dumps({"before_kib": before, "peak_kib": vm_hwm_kib(), "status": status}))


def measure_rss() -> tuple[float, float]:
    """(peak RSS in MB of a child running the 10,000-task grid, its RSS after the imports)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--rss-child"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["status"] != RunStatus.SUCCEEDED.value:
        raise SystemExit(f"the 10,000-task grid in the RSS child ended {out['status']}")
    return out["peak_kib"] * 1024 / 1e6, out["before_kib"] * 1024 / 1e6


LEGEND = """\
us/task: wall time / tasks, median of the rounds. cpu: the same in CPU time of this process (all
  threads): what the executor burns, less swayed by other processes on the machine.
+history: us/task with run history on. TaskFlow: its us/task on the same 1,000-task graph.
TaskFlow/ours: its wall time / ours. Right of |: the 10,000-task versions ({large}).
10k/1k cost: their wall time / the 1,000-task version's (linear would be about 10x); in cpu: the
  same in CPU time."""


def report(ours: dict[tuple[str, int], Ours], peer: dict[str, float], rss: float) -> None:
    history = all(ours[s, SMALL].history for s in SHAPES)
    head = ["shape", "tasks", "us/task", "cpu", "+history", "TaskFlow", "TaskFlow/ours"]
    head += ["| tasks", "us/task", "cpu", "10k/1k cost", "in cpu"]
    if not history:
        head.remove("+history")
    rows = [head]
    for shape in SHAPES:
        small, large = ours[shape, SMALL], ours[shape, LARGE]
        row = [label(shape, SMALL), str(small.tasks)]
        row += [f"{small.us_per_task():.1f}", f"{small.us_per_task(small.cpu):.1f}"]
        if history:
            row.append(f"{small.us_per_task(small.history):.1f}")
        if shape in peer:
            row += [f"{peer[shape] / small.tasks * 1e6:.0f}", f"{peer[shape] / small.seconds:.0f}x"]
        else:
            row += ["-", "-"]
        row += [
            f"| {large.tasks}",
            f"{large.us_per_task():.1f}",
            f"{large.us_per_task(large.cpu):.1f}",
        ]
        row.append(f"{large.seconds / small.seconds:.1f}x")
        row.append(f"{statistics.median(large.cpu) / statistics.median(small.cpu):.1f}x")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    print()
    for row in rows:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells))
    print(LEGEND.format(large=", ".join(label(s, LARGE) for s in SHAPES)))

    print("\ngoals:")
    slow = [
        f"{label(s, n)} {ours[s, n].us_per_task():.1f}"
        for n in SIZES
        for s in SHAPES
        if ours[s, n].us_per_task() > GOAL_US_PER_TASK
    ]
    verdict(f"<= {GOAL_US_PER_TASK:g} us/task on every shape, both sizes", slow)
    if peer:
        ratios = {s: peer[s] / ours[s, SMALL].seconds for s in SHAPES if s in peer}
        close = [f"{s} {r:.0f}x" for s, r in ratios.items() if r < GOAL_BELOW_PEER]
        lowest = min(ratios, key=ratios.__getitem__)
        verdict(
            f">= {GOAL_BELOW_PEER:g}x below TaskFlow",
            close,
            f"lowest {lowest} {ratios[lowest]:.0f}x",
        )
    else:
        print(f"  {f'>= {GOAL_BELOW_PEER:g}x below TaskFlow':<46} not measured")
    growth = {s: ours[s, LARGE].seconds / ours[s, SMALL].seconds for s in SHAPES}
    steep = [f"{s} {g:.1f}x" for s, g in growth.items() if g > GOAL_GROWTH]
    highest = max(growth, key=growth.__getitem__)
    verdict(
        f"10,000 tasks cost <= {GOAL_GROWTH:g}x 1,000",
        steep,
        f"highest {highest} {growth[highest]:.1f}x",
    )
    big = [f"{rss:.0f} MB"] if rss >= GOAL_RSS_MB else []
    verdict(f"peak RSS of the 10,000-task grid < {GOAL_RSS_MB:g} MB", big, f"{rss:.0f} MB")


def verdict(goal: str, misses: list[str], detail: str = "") -> None:
    if misses:
        print(f"  {goal:<46} MISSED: {', '.join(misses)}")
    else:
        print(f"  {goal:<46} met{f' ({detail})' if detail else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed runs per shape (median)")
    parser.add_argument("--no-peer", action="store_true", help="skip TaskFlow")
    parser.add_argument("--peer-venv", type=Path, default=PEER_VENV, help="TaskFlow's virtualenv")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child()
        return

    busy = machine_busy()
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    print(f"flow scheduler overhead benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"{platform.node()}: {os.cpu_count()} cores, Linux {platform.release()},"
        f" Python {platform.python_version()}; everything pinned to core {core}"
    )
    print(
        f"no-op async tasks, FlowExecutor(concurrency={CONCURRENCY}), history off;"
        f" us/task = wall time / tasks, median of {args.rounds} runs after a warm-up"
    )
    warning = "  WARNING: other processes compete for the cores" if busy >= BUSY_BEFORE else ""
    print(f"cores busy before the start: {busy:.0%}{warning}", flush=True)

    started = time.perf_counter()
    ours, history_note = asyncio.run(measure_ours(args.rounds))
    print(history_note)
    rss, rss_before = measure_rss()
    print(
        f"peak RSS of a child running the 10,000-task grid once: {rss:.0f} MB"
        f" ({rss_before:.0f} MB of it after the imports, before the flow was built)"
    )
    peer: dict[str, float] = {}
    if args.no_peer:
        print("peer: skipped (--no-peer)")
    else:
        print("running TaskFlow on the 1,000-task shapes (tens of seconds)...", flush=True)
        peer, peer_note = measure_peer(args.peer_venv)
        print(peer_note)
    report(ours, peer, rss)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
