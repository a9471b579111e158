"""`system_notify_task`: notify someone through the MFO server, or the log when there is none.

Flows written for a laptop run without a server; a notification then lands in the log at INFO
instead of failing the run. `mfo_notification_task` is the variant that requires the server.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mfo_client.flows._context import FlowContext
from mfo_client.flows._registry import TaskCallable
from mfo_client.flows.tasks._common import MessageConfig, idempotency_key

__all__ = ["SystemNotifyConfig", "build_system_notify"]


class SystemNotifyConfig(MessageConfig):
    recipient: str = Field(min_length=1)
    channel: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def build_system_notify(cfg: SystemNotifyConfig) -> TaskCallable:
    async def run(ctx: FlowContext) -> dict[str, Any]:
        message = cfg.text
        mfo = ctx.clients.mfo
        if mfo is None:
            ctx.log.info("notification for %s: %s", cfg.recipient, message)
            return {"notificationID": None, "message": message}
        body = {
            "recipient": cfg.recipient,
            "message": message,
            "channel": cfg.channel,
            "metadata": cfg.metadata,
        }
        sent = await mfo.notifications.create(
            cfg.recipient,
            message,
            cfg.channel,
            cfg.metadata,
            idempotency_key=idempotency_key(ctx, body),
        )
        return {"notificationID": sent.id, "message": message}

    return run
