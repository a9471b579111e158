"""What a running task sees: the flow's data, its own outputs, a logger, and the clients.

The data of a run is one mapping: the initial context at the top level (`eventName`,
`input.dataID`) and each finished task's outputs under its id (`store_data_mfo.resourceID`).
A task writes only its own outputs, and the executor publishes them when the task succeeds,
so concurrent tasks never see each other half-done. What a task logs through `ctx.log` has the
run's secret values replaced by `***` (see `_secrets`).

Python cannot stop a thread, so a sync task that may run long should honour `ctx.deadline` and
`ctx.cancelled` itself: the executor gives up on a timed-out or cancelled sync attempt, but its
thread runs until the function returns.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mfo_client.flows._errors import MissingClientError
from mfo_client.flows._secrets import Redactor, config_secrets

if TYPE_CHECKING:
    import httpx

    from mfo_client.api import AsyncMFOClient
    from mfo_client.config import Config

__all__ = ["MISSING", "FlowClients", "FlowContext", "TaskInfo", "lookup"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def lookup(data: Mapping[str, Any], path: str, default: Any = MISSING) -> Any:
    """`data["a"]["b"]["c"]` for `"a.b.c"`; list items by index (`items.0.id`)."""
    current: Any = data
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple) and part.lstrip("-").isdigit():
            try:
                current = current[int(part)]
            except IndexError:
                return default
        else:
            return default
    return current


@dataclass(frozen=True, slots=True)
class TaskInfo:
    id: str
    name: str
    type: str
    attempt: int
    dependencies: tuple[str, ...] = ()
    flow: str = ""
    run_id: str = ""
    index: int | None = None
    """With `for_each`: the item's position in the list; None otherwise."""


@dataclass(slots=True)
class FlowClients:
    """What tasks may use to reach the outside world; any may be absent."""

    mfo: AsyncMFOClient | None = None
    http: httpx.AsyncClient | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    """Task-type settings from the config (`flows.tasks.<type>`), e.g. transformation rules."""
    secrets: tuple[str, ...] = ()
    """Secret values of the config (MFO token, passwords, webhook secrets): every run of an
    executor holding these clients hides them from what it reports."""
    secret_env: tuple[str, ...] = ()
    """Environment variables any flow may read as `${VAR}`, as secrets (`flows.secrets`)."""

    @classmethod
    def from_config(cls, config: Config) -> FlowClients:
        """The MFO client of the `client` section, the operator settings of `flows`, and the
        config's secrets (values to hide, and `flows.secrets`)."""
        import httpx

        from mfo_client.api import AsyncMFOClient

        # One HTTP client for every http_get_task of the run (a new one costs ~20 ms of CPU);
        # trust_env off, so no proxy from the environment sees URLs chosen by event data.
        return cls(
            mfo=AsyncMFOClient.from_config(config),
            http=httpx.AsyncClient(trust_env=False),
            settings=config.flows.task_settings(),
            secrets=config_secrets(config),
            secret_env=tuple(config.flows.secrets),
        )

    async def aclose(self) -> None:
        """Close the clients this object holds."""
        if self.mfo is not None:
            await self.mfo.aclose()
        if self.http is not None:
            await self.http.aclose()


class FlowContext:
    """The running task's view of its flow run."""

    def __init__(
        self,
        data: Mapping[str, Any],
        task: TaskInfo,
        clients: FlowClients | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        initial: Mapping[str, Any] | None = None,
        redactor: Redactor | None = None,
        deadline: float | None = None,
    ) -> None:
        self._data = data
        self._initial = initial if initial is not None else data
        self._outputs: dict[str, Any] = {}
        self.task = task
        self.clients = clients or FlowClients()
        self._logger = logger
        self._redactor = redactor
        self._log: logging.LoggerAdapter[logging.Logger] | None = None
        self._deadline = deadline
        self._cancelled = False

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry the flow, run and task ids, with the run's secrets
        replaced by `***` (made on first use)."""
        if self._log is None:
            base = self._logger or logging.getLogger("mfo_client.flows")
            self._log = _RunLogger(
                base if isinstance(base, logging.Logger) else base.logger,
                {
                    "mfo": {
                        "flow": self.task.flow,
                        "run_id": self.task.run_id,
                        "task_id": self.task.id,
                    }
                },
                self._redactor,
            )
        return self._log

    @property
    def deadline(self) -> float | None:
        """When this attempt times out, as a `time.monotonic()` value (the earlier of the task's
        and the flow's timeout); None without either."""
        return self._deadline

    @property
    def cancelled(self) -> bool:
        """True once the executor has given up on this attempt (timeout, cancellation,
        fail-fast): a sync task checks it between steps and returns early, since its thread
        cannot be stopped from outside."""
        return self._cancelled

    def _cancel(self) -> None:
        """Called by the executor when it gives up on the attempt."""
        self._cancelled = True

    @property
    def data(self) -> Mapping[str, Any]:
        """The initial context plus every finished task's outputs under its id (read-only)."""
        return self._data

    @property
    def input(self) -> Mapping[str, Any]:
        """The initial context the run started with, without any task's outputs."""
        return self._initial

    def get(self, path: str, default: Any = None) -> Any:
        """The value at a dotted path (`input.dataID`, `store_data_mfo.resourceID`)."""
        value = lookup(self._outputs, path)  # this task's own outputs first
        if value is MISSING:
            value = lookup(self._data, path, default)
        return value

    def get_str(self, path: str, default: str = "") -> str:
        value = self.get(path, None)
        return default if value is None else str(value)

    def set(self, key: str, value: Any) -> None:
        """Record an output of this task, readable downstream as `<task_id>.<key>`."""
        self._outputs[key] = value

    @property
    def outputs(self) -> dict[str, Any]:
        return self._outputs

    def upstream(self) -> dict[str, Any]:
        """The outputs of the tasks this one depends on, by task id."""
        return {dep: self._data.get(dep, {}) for dep in self.task.dependencies}

    @property
    def mfo(self) -> AsyncMFOClient:
        """The MFO API client; MissingClientError when the run has no server configured."""
        if self.clients.mfo is None:
            raise MissingClientError(self.task.type)
        return self.clients.mfo


class _RunLogger(logging.LoggerAdapter[logging.Logger]):
    """Formats each message (and traceback) itself, so secrets are replaced before a handler
    sees the text; without secrets it is a plain adapter."""

    def __init__(
        self, logger: logging.Logger, extra: Mapping[str, object], redactor: Redactor | None
    ) -> None:
        super().__init__(logger, extra)
        self.redactor = redactor

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        redactor = self.redactor
        if not redactor or not self.isEnabledFor(level):
            super().log(level, msg, *args, **kwargs)
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):  # a broken format: keep everything, as text
            text = f"{msg} {args!r}"
        exc_info = kwargs.pop("exc_info", None)
        if exc_info:
            if isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            elif not isinstance(exc_info, tuple):
                exc_info = sys.exc_info()
            if exc_info[0] is not None:
                text += "\n" + logging.Formatter().formatException(exc_info)
        # One frame more than the adapter's own, so the record names the task's line.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        super().log(level, redactor.text(text), **kwargs)
