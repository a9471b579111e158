"""The hook through which accepted events start flow runs.

The listener knows nothing of flows: a `Dispatch` plugged in by the caller says which runs an
event asks for, and the listener stores them in the event's own transaction, so an
acknowledged event never loses its runs. After the commit it may answer the sender itself
(a flow's outputs, say) instead of the usual 202.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from starlette.responses import Response

from mfo_client.delivery import Accepted, FlowJob, IncomingEvent

__all__ = ["Dispatch", "runs_body"]


class Dispatch(Protocol):
    """Turns a verified event into flow-run jobs, and may answer its sender synchronously."""

    def plan(self, item: IncomingEvent) -> Sequence[FlowJob]:
        """The flow runs this event asks for, in order; called before the store commits.

        Must not raise: a trigger that cannot be evaluated is logged and skipped by the
        implementation. (If it raises anyway, the request is refused with 500 and nothing is
        stored, so the sender retries.)
        """
        ...

    async def respond(self, item: IncomingEvent, accepted: Accepted) -> Response | None:
        """A synchronous answer for the sender, or None for the usual 202.

        Called after the commit, never for a repeat delivery; may wait (on a run's outputs),
        bounded by the implementation's own timeout. If it raises, the 202 is sent: the
        event and its runs are stored either way.
        """
        ...


def runs_body(accepted: Accepted) -> list[dict[str, Any]]:
    """The runs an accepted event started, as the 202 body's `runs`."""
    return [
        {"trigger": job.trigger, "run_id": job.id, "duplicate": job.duplicate}
        for job in accepted.jobs
    ]
