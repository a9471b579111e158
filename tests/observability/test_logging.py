"""Logging setup: records go to the stderr of the moment, as text or JSON, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from mfo_client.observability import configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_records_go_to_the_current_stderr_even_after_the_old_one_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    configure_logging("info", "json")
    first.close()  # e.g. a test runner's capture, finished
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)

    logging.getLogger("mfo_client.test").info(
        "event forwarded: %s", "e-1", extra={"mfo": {"event_id": "e-1"}}
    )

    record = json.loads(second.getvalue())
    assert (record["event"], record["event_id"], record["level"]) == (
        "event forwarded: e-1",
        "e-1",
        "info",
    )
