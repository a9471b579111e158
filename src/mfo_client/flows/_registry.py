"""The task registry: task type names -> factories that build task callables from config.

A factory receives the task's `config` mapping and returns the callable (sync or async) that
runs the task with a `FlowContext`. It is called once when the flow is built, to validate the
config (raise ValueError / pydantic ValidationError / TaskError with a clear message), and again
just before the task runs with the templates rendered. A task callable may return a mapping,
whose keys become its outputs, or any other value, stored as the output `result`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, TypeAlias

from mfo_client.flows._context import FlowContext
from mfo_client.flows._errors import UnknownTaskTypeError

__all__ = ["ENTRY_POINT_GROUP", "TaskCallable", "TaskFactory", "TaskRegistry"]

ENTRY_POINT_GROUP = "mfo_client.tasks"

TaskCallable: TypeAlias = Callable[[FlowContext], Awaitable[Any] | Any]
TaskFactory: TypeAlias = Callable[[Mapping[str, Any]], TaskCallable]

_log = logging.getLogger("mfo_client.flows")


class TaskRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, TaskFactory] = {}

    def register(self, type_name: str, factory: TaskFactory, *, replace: bool = False) -> None:
        if not type_name or not type_name.strip():
            raise ValueError("a task type name must not be empty")
        if type_name in self._factories and not replace:
            raise ValueError(f'task type "{type_name}" is already registered (pass replace=True)')
        self._factories[type_name] = factory

    def task(
        self, type_name: str, *, replace: bool = False
    ) -> Callable[[TaskFactory], TaskFactory]:
        """Decorator form of `register`: `@registry.task("my_task")` over a factory."""

        def decorate(factory: TaskFactory) -> TaskFactory:
            self.register(type_name, factory, replace=replace)
            return factory

        return decorate

    def get(self, type_name: str) -> TaskFactory:
        try:
            return self._factories[type_name]
        except KeyError:
            raise UnknownTaskTypeError(type_name, self.types()) from None

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._factories

    def types(self) -> list[str]:
        return sorted(self._factories)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register third-party task packs: each entry point is a callable taking the registry.

        A broken pack is logged and skipped, so one bad plugin cannot stop every flow.
        """
        loaded: list[str] = []
        for ep in entry_points(group=group):
            try:
                ep.load()(self)
            except Exception:
                _log.exception("task pack %s (%s) failed to load; skipped", ep.name, ep.value)
                continue
            loaded.append(ep.name)
        return loaded

    def copy(self) -> TaskRegistry:
        clone = TaskRegistry()
        clone._factories = dict(self._factories)
        return clone
