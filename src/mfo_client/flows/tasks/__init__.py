"""The built-in task types, each a factory over a typed config model.

| type                       | outputs                                   |
|----------------------------|-------------------------------------------|
| `simple_log_task`          | `message`                                 |
| `system_notify_task`       | `notificationID` (None when logged), `message` |
| `http_get_task`            | `status`, `headers`, `body`, `url`        |
| `data_transform_task`      | `output`                                  |
| `mfo_event_send_task`      | `eventID`                                 |
| `mfo_resource_create_task` | `resourceID`                              |
| `mfo_chat_send_task`       | `messageID`                               |
| `mfo_job_create_task`      | `jobID`, `status`, `output`               |
| `mfo_notification_task`    | `notificationID`                          |

A config with an unknown key or a value of the wrong type raises `TaskConfigError` (a
ValueError and a TaskError) naming the task type, the key and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mfo_client.flows._registry import TaskFactory, TaskRegistry
from mfo_client.flows.tasks._common import TaskConfig, TaskConfigError, config_factory
from mfo_client.flows.tasks._http import HttpGetConfig, build_http_get
from mfo_client.flows.tasks._log import SimpleLogConfig, build_simple_log
from mfo_client.flows.tasks._mfo import (
    MFOChatSendConfig,
    MFOEventSendConfig,
    MFOJobCreateConfig,
    MFONotificationConfig,
    MFOResourceCreateConfig,
    build_mfo_chat_send,
    build_mfo_event_send,
    build_mfo_job_create,
    build_mfo_notification,
    build_mfo_resource_create,
)
from mfo_client.flows.tasks._notify import SystemNotifyConfig, build_system_notify
from mfo_client.flows.tasks._ssrf import UnsafeURLError
from mfo_client.flows.tasks._transform import (
    BUILTIN_RULES,
    DataTransformConfig,
    TransformationRule,
    build_data_transform,
)

__all__ = [
    "BUILTIN_FACTORIES",
    "BUILTIN_RULES",
    "DataTransformConfig",
    "HttpGetConfig",
    "MFOChatSendConfig",
    "MFOEventSendConfig",
    "MFOJobCreateConfig",
    "MFONotificationConfig",
    "MFOResourceCreateConfig",
    "SimpleLogConfig",
    "SystemNotifyConfig",
    "TaskConfig",
    "TaskConfigError",
    "TransformationRule",
    "UnsafeURLError",
    "builtin_registry",
    "register_builtins",
]

BUILTIN_FACTORIES: Mapping[str, TaskFactory] = MappingProxyType(
    {
        "simple_log_task": config_factory("simple_log_task", SimpleLogConfig, build_simple_log),
        "system_notify_task": config_factory(
            "system_notify_task", SystemNotifyConfig, build_system_notify
        ),
        "http_get_task": config_factory("http_get_task", HttpGetConfig, build_http_get),
        "data_transform_task": config_factory(
            "data_transform_task", DataTransformConfig, build_data_transform
        ),
        "mfo_event_send_task": config_factory(
            "mfo_event_send_task", MFOEventSendConfig, build_mfo_event_send
        ),
        "mfo_resource_create_task": config_factory(
            "mfo_resource_create_task", MFOResourceCreateConfig, build_mfo_resource_create
        ),
        "mfo_chat_send_task": config_factory(
            "mfo_chat_send_task", MFOChatSendConfig, build_mfo_chat_send
        ),
        "mfo_job_create_task": config_factory(
            "mfo_job_create_task", MFOJobCreateConfig, build_mfo_job_create
        ),
        "mfo_notification_task": config_factory(
            "mfo_notification_task", MFONotificationConfig, build_mfo_notification
        ),
    }
)
"""Task type name -> factory, for every built-in (read-only)."""


def register_builtins(registry: TaskRegistry, *, replace: bool = False) -> None:
    """Register every built-in task type in `registry`."""
    for type_name, factory in BUILTIN_FACTORIES.items():
        registry.register(type_name, factory, replace=replace)


def builtin_registry() -> TaskRegistry:
    """A fresh registry holding the built-in task types (and nothing else)."""
    registry = TaskRegistry()
    register_builtins(registry)
    return registry
