"""`simple_log_task`, and `system_notify_task` without a server (it logs instead)."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest

from mfo_client.flows._context import FlowContext, TaskInfo
from mfo_client.flows.tasks import builtin_registry


def make_ctx(task_type: str) -> FlowContext:
    info = TaskInfo(id="log_it", name="Log it", type=task_type, attempt=1, flow="f", run_id="r1")
    return FlowContext({"eventName": "user_created"}, info)


async def run(task_type: str, config: dict[str, Any]) -> Any:
    result = builtin_registry().get(task_type)(config)(make_ctx(task_type))
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize(
    ("given", "level"),
    [
        ("DEBUG", logging.DEBUG),
        ("info", logging.INFO),
        ("Warn", logging.WARNING),
        ("WARNING", logging.WARNING),
        ("error", logging.ERROR),
    ],
)
async def test_simple_log_task_logs_at_the_level_given_in_any_case(
    given: str, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mfo_client.flows")
    outputs = await run("simple_log_task", {"log_level": given, "log_message": "100% done"})
    assert outputs == {"message": "100% done"}
    [record] = [r for r in caplog.records if r.name == "mfo_client.flows"]
    assert (record.levelno, record.getMessage()) == (level, "100% done")
    assert record.mfo == {"flow": "f", "run_id": "r1", "task_id": "log_it"}  # type: ignore[attr-defined]


async def test_simple_log_task_defaults_to_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mfo_client.flows")
    await run("simple_log_task", {"log_message": "hello"})
    assert [r.levelno for r in caplog.records] == [logging.INFO]


async def test_system_notify_task_without_a_server_logs_the_notification(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mfo_client.flows")
    outputs = await run(
        "system_notify_task",
        {"recipient": "admin@example.com", "message_template": "Event user_created received"},
    )
    assert outputs == {"notificationID": None, "message": "Event user_created received"}
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "notification for admin@example.com: Event user_created received"
    )
