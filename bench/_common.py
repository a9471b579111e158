"""Helpers for benchmarks that run a server in a process of its own, pinned to one core.

The load generator is the calling process, pinned to another core, so the two never compete for
a core and each one's CPU time can be read apart: the server's from /proc, ours from getrusage.
A server's peak resident memory comes from /proc too (VmHWM), read before it is stopped.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx

__all__ = [
    "ServerProcess",
    "exit_with",
    "machine_busy",
    "own_cpu",
    "percentile",
    "split_cores",
    "started",
]

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def split_cores() -> tuple[int | None, int | None]:
    """(server core, load core); Nones, with a warning, when they cannot be kept apart."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        print("warning: fewer than 2 cores or no taskset; running unpinned", file=sys.stderr)
        return None, None
    return cores[-1], cores[0]


def machine_busy(seconds: float = 0.5) -> float:
    """Share of all cores busy over the next `seconds` (from /proc/stat), 0..1: taken before a
    benchmark starts, it says whether something else on the machine competes for the cores."""

    def sample() -> tuple[int, int]:
        fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]), idle  # user .. steal; guest time is already in user

    total, idle = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    return 1 - (idle2 - idle) / max(total2 - total, 1)


def own_cpu() -> float:
    """User + system seconds of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class ServerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    """Its stderr and stdout (some servers announce their URL on stdout)."""
    url: str = ""

    def cpu_seconds(self) -> float:
        """User + system time of the whole process so far: fields 14 and 15 of its stat line."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def peak_rss_mib(self) -> float:
        """Peak resident set size so far ("high water mark", VmHWM in /proc/<pid>/status), MiB.

        Read it while the process runs: it is gone once the process has been reaped.
        """
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                value, unit = line.split()[1:3]
                if unit != "kB":
                    raise ValueError(f"unexpected VmHWM unit {unit!r}")
                return int(value) / 1024
        raise ValueError(f"no VmHWM in /proc/{self.proc.pid}/status")

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM for a graceful shutdown; SIGKILL after STOP_TIMEOUT, or if we are interrupted."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"\n{self.name}: still running after SIGTERM, killing it", file=sys.stderr)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)

    def wait_ready(self, announce: re.Pattern[str], ready_path: str) -> None:
        """Find the URL the server prints to stderr, then poll `ready_path` until it says 200."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            if not self.url and (found := announce.search(self.log.read_text(errors="replace"))):
                self.url = found.group(1)
            if self.url:
                with contextlib.suppress(httpx.TransportError):
                    response = httpx.get(self.url + ready_path, timeout=1, trust_env=False)
                    if response.status_code == 200:
                        return
            time.sleep(0.05)
        raise SystemExit(f"\n{self.name} did not start:\n{self.log_tail()}")


@contextlib.contextmanager
def started(
    name: str,
    cmd: list[str],
    *,
    core: int | None,
    workdir: Path,
    announce: re.Pattern[str],
    ready_path: str = "/healthz",
    env: Mapping[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """Run `cmd` pinned to `core` until the block ends; `announce` captures its URL from what it
    prints (stderr and stdout both go to `workdir/<name>.log`)."""
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]  # taskset execs: the pid is the server's
    log = workdir / f"{name}.log"
    with log.open("wb") as err:
        # A session of its own: Ctrl-C reaches only us, and we stop the server in order.
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            cwd=workdir,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    server = ServerProcess(name, proc, log)
    try:
        server.wait_ready(announce, ready_path)
        yield server
    finally:
        server.stop()


def exit_with(run: Callable[[], int], interrupted: str) -> NoReturn:
    """Exit with what `run()` returns; SIGTERM or Ctrl-C stop it the same way (its `finally`
    blocks stop the servers), printing `interrupted` and exiting 130."""

    def terminated(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    try:
        sys.exit(run())
    except KeyboardInterrupt:
        print(f"\n{interrupted}", file=sys.stderr)
        sys.exit(130)
