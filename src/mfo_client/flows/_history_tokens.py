"""The fencing tokens of one run history handle (see Fencing in `_history`).

A handle remembers the token of its own last `start_run` of each run, and forgets it once that
run's end was recorded with it. A token found stale stays remembered, so every later write of
that run from this handle is refused as well: forgetting it would let the next one through as
an operator's write. At most `KEPT` tokens are kept (the oldest goes first); a handle runs far
fewer runs at once.
"""

from __future__ import annotations

import uuid
from typing import Final

__all__ = ["KEPT", "RunTokens"]

KEPT: Final = 16_384
"""Most tokens one handle keeps."""


class RunTokens:
    """Run id -> the token of this handle's last `start_run` of it."""

    def __init__(self) -> None:
        self._by_run: dict[str, str] = {}

    def start(self, run_id: str) -> str:
        """A fresh token for a `start_run` of `run_id`, remembered for its later writes."""
        token = uuid.uuid4().hex
        self._by_run.pop(run_id, None)  # to the end: the newest is kept longest
        self._by_run[run_id] = token
        if len(self._by_run) > KEPT:
            del self._by_run[next(iter(self._by_run))]
        return token

    def of(self, run_id: str) -> str | None:
        """The token the writes of `run_id` carry; None if this handle never started it."""
        return self._by_run.get(run_id)

    def finished(self, run_id: str, token: str | None) -> None:
        """The run's end was recorded with `token`: nothing of it is left to fence."""
        if token is not None and self._by_run.get(run_id) == token:
            del self._by_run[run_id]
