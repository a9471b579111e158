"""The built-ins' registry and config validation: exact messages, and templates let through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import mfo_client.flows.tasks as tasks
from mfo_client.flows._context import FlowContext, TaskInfo
from mfo_client.flows._errors import TaskError
from mfo_client.flows._registry import TaskRegistry
from mfo_client.flows.tasks import TaskConfigError, builtin_registry, register_builtins

SEEDS = Path("/work/shared/seed-examples")
BUILTINS = [
    "data_transform_task",
    "http_get_task",
    "mfo_chat_send_task",
    "mfo_event_send_task",
    "mfo_job_create_task",
    "mfo_notification_task",
    "mfo_resource_create_task",
    "simple_log_task",
    "system_notify_task",
]


def test_all_is_sorted_and_complete() -> None:
    assert tasks.__all__ == sorted(tasks.__all__)
    assert all(hasattr(tasks, name) for name in tasks.__all__)


def test_builtin_registry_holds_every_builtin_and_is_fresh() -> None:
    first, second = builtin_registry(), builtin_registry()
    assert first.types() == BUILTINS
    first.register("mine", lambda config: lambda ctx: None)
    assert "mine" not in second


def test_register_builtins_refuses_to_replace_unless_asked() -> None:
    registry = TaskRegistry()
    register_builtins(registry)
    with pytest.raises(ValueError, match="is already registered \\(pass replace=True\\)"):
        register_builtins(registry)
    register_builtins(registry, replace=True)


@pytest.mark.parametrize("seed", ["sample_flow.yaml", "data_pipeline_flow.yaml"])
def test_seed_flow_configs_are_accepted(seed: str) -> None:
    registry = builtin_registry()
    flow = yaml.safe_load((SEEDS / seed).read_text())
    for task in flow["tasks"]:
        assert callable(registry.get(task["type"])(task.get("config") or {}))


def ctx_for(task_type: str) -> FlowContext:
    return FlowContext({}, TaskInfo(id="t", name="t", type=task_type, attempt=1))


def error_of(task_type: str, config: Any) -> str:
    with pytest.raises(TaskConfigError) as info:
        builtin_registry().get(task_type)(config)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TaskError)
    assert info.value.task_type == task_type
    return str(info.value)


@pytest.mark.parametrize(
    ("task_type", "config", "message"),
    [
        (
            "simple_log_task",
            {"log_levl": "INFO", "log_message": "x"},
            'log_levl: unknown key (did you mean "log_level"?); '
            "allowed keys: log_level, log_message",
        ),
        (
            "simple_log_task",
            {"log_level": "LOUD", "log_message": "x"},
            'log_level: must be one of DEBUG, INFO, WARN, WARNING, ERROR (any case), got "LOUD"',
        ),
        (
            "simple_log_task",
            {"log_message": 5},
            "log_message: must be a string, got 5 (quote the value in YAML)",
        ),
        ("simple_log_task", {}, "log_message: required, but not set"),
        (
            "system_notify_task",
            {"recipient": "a", "message_templat": "x"},
            'message_templat: unknown key (did you mean "message_template"?); '
            "allowed keys: channel, message, message_template, metadata, recipient",
        ),
        (
            "system_notify_task",
            {"recipient": ["a"], "message": "x"},
            "recipient: must be a string, got a list",
        ),
        (
            "system_notify_task",
            {"recipient": "a"},
            "message_template (or message) is required, but not set",
        ),
        (
            "system_notify_task",
            {"recipient": "a", "message": "x", "message_template": "y"},
            "give message_template or message, not both",
        ),
        (
            "http_get_task",
            {"url": "https://x.example/", "follow_redirect": True},
            'follow_redirect: unknown key (did you mean "follow_redirects"?); allowed keys: '
            "allow_hosts, follow_redirects, headers, max_bytes, max_redirects, output, "
            "timeout, url",
        ),
        (
            "http_get_task",
            {"url": "https://x.example/", "timeout": "soon", "max_bytes": "big"},
            'timeout: not a duration: "soon" (use Go-style durations such as 250ms, 30s, 1m, '
            '1h30m); max_bytes: must be a whole number, got "big"',
        ),
        (
            "http_get_task",
            {"url": "https://x.example/", "headers": {"X-A": 1}, "output": "xml"},
            "headers.X-A: must be a string, got 1 (quote the value in YAML); "
            'output: must be one of auto, json, text, got "xml"',
        ),
        (
            "http_get_task",
            {"url": "https://x.example/", "allow_hosts": ["10.0.0.0/8", "http://intranet"]},
            'allow_hosts[1]: not a host name, IP address or CIDR network: "http://intranet" '
            '(write "api.internal", "*.corp.example", "10.0.0.5" or "10.0.0.0/8")',
        ),
        (
            "http_get_task",
            {"url": "file:///etc/passwd"},
            'url: must be an http or https URL with a host, got "file:///etc/passwd"',
        ),
        (
            "http_get_task",
            {"url": "https://x.example/", "timeout": 0},
            "timeout: must be more than 0s, got 0s",
        ),
        (
            "data_transform_task",
            {"expresions": {"a": "b"}},
            'expresions: unknown key (did you mean "expressions"?); allowed keys: expression, '
            "expressions, mapping, source, transformation_rule",
        ),
        (
            "data_transform_task",
            {},
            "one of expressions, mapping, expression, transformation_rule is required",
        ),
        (
            "data_transform_task",
            {"expression": "a", "transformation_rule": "ruleset_v1"},
            "give only one of expressions, mapping, expression, transformation_rule; "
            "got expression, transformation_rule",
        ),
        (
            "data_transform_task",
            {"expressions": {"total": "sum(items[*].price"}},
            'expressions.total: not a valid JMESPath expression: "sum(items[*].price" '
            "(incomplete expression)",
        ),
        (
            "data_transform_task",
            {"expression": "a b"},
            'expression: not a valid JMESPath expression: "a b" (unexpected token: b at column 3)',
        ),
        (
            "data_transform_task",
            {"mapping": ["a"]},
            "mapping: must be a mapping of keys, got a list",
        ),
        (
            "mfo_event_send_task",
            {"event_type": "x", "metdata": {}},
            'metdata: unknown key (did you mean "metadata"?); allowed keys: event_id, '
            "event_type, metadata, payload, source",
        ),
        ("mfo_event_send_task", {"payload": 1}, "event_type: required, but not set"),
        (
            "mfo_event_send_task",
            {"event_type": "x", "metadata": "none"},
            'metadata: must be a mapping of keys, got "none"',
        ),
        (
            "mfo_resource_create_task",
            {"resource_type": "x", "contnet": 1},
            'contnet: unknown key (did you mean "content"?); '
            "allowed keys: content, metadata, resource_type",
        ),
        (
            "mfo_resource_create_task",
            {"resource_type": 7},
            "resource_type: must be a string, got 7 (quote the value in YAML)",
        ),
        (
            "mfo_chat_send_task",
            {"thread": "t", "message": "m"},
            "thread_id: required, but not set; "
            'thread: unknown key (did you mean "thread_id"?); '
            "allowed keys: message, message_template, metadata, thread_id",
        ),
        (
            "mfo_chat_send_task",
            {"thread_id": "t"},
            "message_template (or message) is required, but not set",
        ),
        (
            "mfo_job_create_task",
            {"job_type": "j", "wiat": True},
            'wiat: unknown key (did you mean "wait"?); allowed keys: input, job_type, '
            "metadata, wait, wait_timeout",
        ),
        (
            "mfo_job_create_task",
            {"job_type": "j", "wait": "maybe", "wait_timeout": "forever"},
            'wait: must be true or false, got "maybe"; wait_timeout: not a duration: "forever" '
            "(use Go-style durations such as 250ms, 30s, 1m, 1h30m)",
        ),
        (
            "mfo_notification_task",
            {"recipient": "r", "message": "m", "chanel": "email"},
            'chanel: unknown key (did you mean "channel"?); '
            "allowed keys: channel, message, message_template, metadata, recipient",
        ),
        (
            "mfo_notification_task",
            {"recipient": "", "message": "m"},
            "recipient: must not be empty",
        ),
    ],
)
def test_config_errors_name_the_task_the_key_and_what_is_allowed(
    task_type: str, config: dict[str, Any], message: str
) -> None:
    assert error_of(task_type, config) == f"invalid config for {task_type}: {message}"


def test_a_config_that_is_not_a_mapping_is_refused() -> None:
    assert error_of("simple_log_task", ["x"]) == (
        "invalid config for simple_log_task: config must be a mapping of keys, got a list"
    )


def test_a_template_is_not_an_error_at_build_time_but_must_be_rendered_to_run() -> None:
    factory = builtin_registry().get("http_get_task")
    raw = {"url": "{{.input.url}}", "timeout": "{{.input.timeout}}"}
    task = factory(raw)  # build time: accepted
    with pytest.raises(TaskConfigError) as info:
        task(ctx_for("http_get_task"))
    assert str(info.value) == (
        'invalid config for http_get_task: timeout: not a duration: "{{.input.timeout}}" '
        "(use Go-style durations such as 250ms, 30s, 1m, 1h30m) "
        "(the value is still a template after rendering)"
    )


def test_templates_in_every_kind_of_field_pass_build_time_validation() -> None:
    registry = builtin_registry()
    configs = {
        "simple_log_task": {"log_level": "{{.input.level}}", "log_message": "{{.eventName}}"},
        "data_transform_task": {"expression": "{{.input.expr}}", "source": "{{.input.path}}"},
        "mfo_job_create_task": {"job_type": "j", "wait": "{{.input.wait}}"},
        "http_get_task": {"url": "https://api.external.com/data/{{.input.dataID}}"},
    }
    for task_type, config in configs.items():
        assert callable(registry.get(task_type)(config))


def test_allow_hosts_cannot_come_from_event_data() -> None:
    assert error_of("http_get_task", {"url": "https://x.test/", "allow_hosts": ["{{.h}}"]}) == (
        "invalid config for http_get_task: allow_hosts[0]: allow_hosts entries cannot be "
        "templates, got '{{.h}}'"
    )


def test_an_unknown_key_is_an_error_even_when_its_value_is_a_template() -> None:
    assert error_of("simple_log_task", {"log_mesage": "{{.x}}", "log_message": "m"}) == (
        "invalid config for simple_log_task: log_mesage: unknown key (did you mean "
        '"log_message"?); allowed keys: log_level, log_message'
    )
