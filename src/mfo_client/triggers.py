"""Which accepted events start which local flows, and what the flow is given.

A `Trigger` is one `triggers:` entry made ready to use: its match compiled, its flow file
loaded and built against the task types. `load_triggers` does that for the whole section when
`mfo serve` (or `mfo worker`) starts and reports every problem at once, so a broken trigger
stops the start instead of failing on the first event.

The listener asks `Triggers.plan` for the flow jobs of each event before it stores the event:
the jobs are stored in the same transaction, so an acknowledged event never loses its runs.
Matching and the dedupe key are evaluated then; the input mapping is evaluated by the worker
when the run starts (`Trigger.initial_context`), so a mapping that does not fit an event fails
that run visibly, in the run history, instead of dropping it at intake.

Expressions (`match.expression`, `input`, `dedupe`) are the flow engine's: one Jinja2
expression in its sandbox, over the event's fields (`type`, `source`, `payload`, `metadata`,
`id`, `timestamp`) and the whole event as `event`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mfo_client.config import Config
from mfo_client.config._triggers import TriggerConfig
from mfo_client.delivery import FlowJob, IncomingEvent
from mfo_client.flows import (
    BuiltFlow,
    FlowDefinitionError,
    TaskRegistry,
    build_flow,
    check_expression,
    evaluate,
    is_true,
    load_flow,
)

__all__ = ["Trigger", "TriggerError", "Triggers", "event_variables", "load_triggers"]

_log = logging.getLogger("mfo_client.triggers")

MAX_DEDUPE_KEY: Final = 200
"""Longer dedupe values are stored as their SHA-256, so any value fits the store's key."""


class TriggerError(ValueError):
    """The `triggers` section cannot run; `problems` lists every one, located."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def event_variables(event: Mapping[str, Any]) -> dict[str, Any]:
    """What expressions over an event see: its fields at the top level, and all of it as
    `event`."""
    return {**event, "event": event}


@dataclass(frozen=True, slots=True)
class Trigger:
    """One configured trigger, checked and ready; see the module docstring."""

    config: TriggerConfig
    flow: BuiltFlow
    flow_file: str

    @property
    def name(self) -> str:
        return self.config.name

    def matches(self, source: str, event: Mapping[str, Any]) -> bool:
        """Whether the event from `source` starts this trigger's flow.

        An expression that cannot be evaluated on this event (e.g. it reads a field the event
        does not have) does not match; the reason is logged.
        """
        match = self.config.match
        if not any(fnmatch.fnmatchcase(source, glob) for glob in match.source):
            return False
        kind = str(event.get("type", ""))
        if not any(fnmatch.fnmatchcase(kind, glob) for glob in match.type):
            return False
        if match.expression is None:
            return True
        where = f"triggers[{self.name}].match.expression"
        try:
            return is_true(match.expression, event_variables(event), where=where)
        except Exception as exc:  # whatever an expression does, intake goes on
            _log.warning(
                "trigger %s does not match event %s: %s",
                self.name,
                event.get("id"),
                exc,
                extra={"mfo": {"trigger": self.name, "event_id": event.get("id")}},
            )
            return False

    def dedupe_key(self, event: Mapping[str, Any]) -> str | None:
        """The value that makes two events one run of this trigger; None: no dedupe (none
        configured, or its expression has no value for this event, which is logged)."""
        if self.config.dedupe is None:
            return None
        where = f"triggers[{self.name}].dedupe"
        try:
            value = evaluate(self.config.dedupe, event_variables(event), where=where)
            if value is None:
                return None
            text = value if isinstance(value, str) else _key_text(value)
        except Exception as exc:  # whatever an expression does, intake goes on
            _log.warning(
                "trigger %s: no dedupe key for event %s, so it is not deduplicated: %s",
                self.name,
                event.get("id"),
                exc,
                extra={"mfo": {"trigger": self.name, "event_id": event.get("id")}},
            )
            return None
        if len(text) > MAX_DEDUPE_KEY:
            text = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return text

    def initial_context(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The flow's initial context for `event`: the `input` mapping, or by default the event
        as `event` and its payload as `input`. Raises `FlowError` naming the key that failed."""
        mapping = self.config.input
        if mapping is None:
            return {"event": dict(event), "input": event.get("payload")}
        variables = event_variables(event)
        return {
            key: evaluate(expr, variables, where=f"triggers[{self.name}].input.{key}")
            for key, expr in mapping.items()
        }


def _key_text(value: Any) -> str:
    """A dedupe value as text: JSON with sorted keys (keys JSON cannot sort, as text)."""
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except TypeError:  # mixed key types cannot be sorted
        return json.dumps(
            {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else value,
            sort_keys=True,
            default=str,
        )


class Triggers:
    """The configured triggers, in config order; plans the flow jobs of each event."""

    def __init__(self, triggers: Iterable[Trigger]) -> None:
        self._all = tuple(triggers)
        self._by_name = {t.name: t for t in self._all}

    def __iter__(self) -> Any:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def get(self, name: str) -> Trigger | None:
        return self._by_name.get(name)

    def matching(self, source: str, event: Mapping[str, Any]) -> list[Trigger]:
        return [t for t in self._all if t.matches(source, event)]

    def plan(self, item: IncomingEvent) -> list[FlowJob]:
        """One flow job per matching trigger, each with a fresh run id."""
        return [
            FlowJob(id=uuid.uuid4().hex, trigger=t.name, dedupe_key=t.dedupe_key(item.event))
            for t in self.matching(item.source, item.event)
        ]


def load_triggers(config: Config, registry: TaskRegistry) -> Triggers:
    """Check the `triggers` section against the sources and load every flow it names.

    Raises `TriggerError` listing every problem (flow file problems keep their file and line).
    """
    sources = [s.name for s in config.webhook_listener.effective_sources()]
    problems: list[str] = []
    loaded: list[Trigger] = []
    for trigger in config.triggers:
        at = f"triggers[{trigger.name}]"
        for glob in trigger.match.source:
            if not any(fnmatch.fnmatchcase(s, glob) for s in sources):
                known = ", ".join(sources) or "none is configured"
                problems.append(
                    f'{at}.match.source: "{glob}" matches no configured webhook source '
                    f"(sources: {known})"
                )
        expressions: dict[str, str | None] = {
            "match.expression": trigger.match.expression,
            "dedupe": trigger.dedupe,
        }
        for key, mapped in (trigger.input or {}).items():
            expressions[f"input.{key}"] = mapped
        for key, expr in expressions.items():
            if expr is None:
                continue
            problem = check_expression(expr)
            if problem is not None:
                if "{{" in expr or "{%" in expr:
                    problem += (
                        " (values here are expressions, not templates: write payload.x, and "
                        "join text with ~, e.g. 'issue ' ~ payload.issue.title)"
                    )
                problems.append(f"{at}.{key}: {problem}")
        path = Path(trigger.flow)
        if not path.is_file():
            problems.append(
                f'{at}.flow: no flow file "{trigger.flow}" (looked for {path.absolute()}; '
                "a relative path is taken from the working directory)"
            )
            continue
        try:
            built = build_flow(load_flow(path), registry)
        except FlowDefinitionError as exc:
            problems.extend(f"{at}.flow: {p}" for p in exc.problems)
            continue
        loaded.append(Trigger(config=trigger, flow=built, flow_file=str(path)))
    if problems:
        raise TriggerError(problems)
    return Triggers(loaded)
