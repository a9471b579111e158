"""The `triggers` section: which accepted events start which local flows.

Only shapes are checked here. Expressions are checked for syntax, and flow files are loaded and
built against the task types, by `mfo_client.triggers` when `mfo serve` starts (the config
package knows nothing of flows).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from mfo_client.config._base import Section
from mfo_client.config._durations import Duration

__all__ = ["TriggerConfig", "TriggerMatch"]

TriggerName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def _one_or_many(value: object) -> object:
    """`type: push` and `type: [push, issues]` both mean a tuple of globs."""
    return (value,) if isinstance(value, str) else value


Globs = Annotated[tuple[str, ...], BeforeValidator(_one_or_many)]


Expression = Annotated[str, Field(min_length=1)]


class TriggerMatch(Section):
    """Which events: all of the given conditions must hold.

    `source` and `type` are shell-style globs (`user_*`, `issue?`), one or a list; `expression`
    is a condition over the event, e.g. `payload.ref == 'refs/heads/main'`.
    """

    source: Globs = ("*",)
    type: Globs = ("*",)
    expression: Expression | None = None


class TriggerConfig(Section):
    """One trigger: a match, the flow file it runs, and how the event becomes the flow's input.

    `input` maps names of the flow's initial context to expressions over the event (`type`,
    `payload.id`, `metadata.webhook.delivery_id`); without it the flow sees the event as
    `event` and its payload as `input`. `dedupe` is an expression whose value identifies the
    work: a second event with the same value does not start another run of this trigger.
    """

    name: TriggerName
    match: TriggerMatch = Field(default_factory=TriggerMatch)
    flow: str = Field(min_length=1)
    """The flow file; a relative path is taken from the working directory."""
    input: dict[str, Expression] | None = None
    dedupe: Expression | None = None
    concurrency: int = Field(default=4, ge=1, le=1024)
    """Runs of this trigger at once in one worker; more wait in the store."""
    respond: Literal["accepted", "outputs"] = "accepted"
    """`outputs`: the webhook response waits for the run and carries its outputs."""
    respond_timeout: Duration = timedelta(seconds=10)
    """With `respond: outputs`: after this, answer 202 with the run id instead."""

    @field_validator("respond_timeout")
    @classmethod
    def _timeout_positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise PydanticCustomError("respond_timeout", "must be more than 0s, e.g. 10s", {})
        return value
