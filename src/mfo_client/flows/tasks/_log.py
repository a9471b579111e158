"""`simple_log_task`: write one message to the run's log."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import field_validator

from mfo_client.config._messages import show
from mfo_client.flows._context import FlowContext
from mfo_client.flows._registry import TaskCallable
from mfo_client.flows.tasks._common import TaskConfig, is_templated

__all__ = ["SimpleLogConfig", "build_simple_log"]

_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
}


class SimpleLogConfig(TaskConfig):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Any case; `WARN` means `WARNING`."""
    log_message: str

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if not isinstance(value, str) or is_templated(value):
            return value
        name = value.strip().upper()
        if name not in _LEVELS:
            raise ValueError(f"must be one of {', '.join(_LEVELS)} (any case), got {show(value)}")
        return "WARNING" if name == "WARN" else name


def build_simple_log(cfg: SimpleLogConfig) -> TaskCallable:
    level = _LEVELS[cfg.log_level]

    def run(ctx: FlowContext) -> dict[str, Any]:
        ctx.log.log(level, "%s", cfg.log_message)
        return {"message": cfg.log_message}

    return run
