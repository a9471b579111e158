"""Taking a batch off a queue: the group commit of both SQLite writers (event store, run history).

A writer thread blocks for the first queued call, then takes whatever else is already waiting,
up to a bound: while one commit is written, later calls pile up and share the next one. It
lives at the package root because `flows/` and `delivery/` may not import each other.
"""

from __future__ import annotations

import queue
from typing import TypeVar

__all__ = ["STOP", "take_batch"]

T = TypeVar("T")

STOP: object = object()
"""Put on the queue to end the writer: `take_batch` returns what came before it, and True."""


def take_batch(
    source: queue.SimpleQueue[object], kind: type[T], limit: int
) -> tuple[list[T], bool]:
    """Block for one item, then take those already queued, up to `limit`; True once `STOP`
    was taken (the items before it are returned, nothing after it is)."""
    items: list[T] = []
    item = source.get()
    while True:
        if item is STOP:
            return items, True
        assert isinstance(item, kind)
        items.append(item)
        if len(items) >= limit:
            return items, False
        try:
            item = source.get_nowait()
        except queue.Empty:
            return items, False
