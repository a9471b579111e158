"""Triggers: matching, input mapping, dedupe keys, and the checks made when the service starts."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from mfo_client.config import Config
from mfo_client.delivery import IncomingEvent
from mfo_client.flows import FlowError
from mfo_client.flows.tasks import builtin_registry
from mfo_client.triggers import Trigger, TriggerError, Triggers, load_triggers

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_FLOW = ROOT / "tests" / "data" / "flows" / "sample_flow.yaml"
LOG_FLOW = """\
name: "LogIt"
tasks:
  - id: "log"
    type: "simple_log_task"
    config: {log_message: "got {{.input}}"}
"""


def make_config(tmp_path: Path, triggers: list[dict[str, Any]], **extra: Any) -> Config:
    flow = tmp_path / "log.yaml"
    flow.write_text(LOG_FLOW)
    for trigger in triggers:
        trigger.setdefault("flow", str(flow))
    return Config.from_mapping(
        {
            "webhook_listener": {
                "secret_key": "s3cret",
                "sources": [{"name": "github", "path": "/github", "secret": "gh-secret"}],
            },
            "triggers": triggers,
            **extra,
        },
        env={},
    )


def load(tmp_path: Path, *triggers: dict[str, Any]) -> Triggers:
    return load_triggers(make_config(tmp_path, list(triggers)), builtin_registry())


def event(source: str, type_: str, payload: Any, id_: str = "e-1") -> IncomingEvent:
    body = {"id": id_, "type": type_, "source": source, "payload": payload, "metadata": {}}
    return IncomingEvent(id_, source, id_, body, b"{}", {}, 0.0)


def only(triggers: Triggers) -> Trigger:
    (trigger,) = list(triggers)
    return trigger


def test_source_and_type_globs_and_the_expression_must_all_match(tmp_path: Path) -> None:
    triggers = load(
        tmp_path,
        {
            "name": "main-pushes",
            "match": {
                "source": "git*",
                "type": ["push", "create"],
                "expression": "payload.ref == 'refs/heads/main'",
            },
        },
        {"name": "users", "match": {"type": "user_*"}},
    )
    main = {"ref": "refs/heads/main"}
    assert [j.trigger for j in triggers.plan(event("github", "push", main))] == ["main-pushes"]
    assert triggers.plan(event("github", "push", {"ref": "refs/heads/dev"})) == []
    assert triggers.plan(event("default", "push", main)) == []
    assert triggers.plan(event("github", "issues", main)) == []
    assert [j.trigger for j in triggers.plan(event("default", "user_created", {}))] == ["users"]


def test_each_planned_job_has_its_own_run_id(tmp_path: Path) -> None:
    triggers = load(tmp_path, {"name": "a"}, {"name": "b"})
    jobs = triggers.plan(event("default", "x", {}))
    assert [j.trigger for j in jobs] == ["a", "b"]
    assert len({j.id for j in jobs}) == 2
    assert jobs[0].id != triggers.plan(event("default", "x", {}))[0].id


def test_an_expression_that_cannot_be_evaluated_does_not_match(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = only(load(tmp_path, {"name": "t", "match": {"expression": "payload.ref == 'x'"}}))
    assert not trigger.matches("github", event("github", "ping", {"zen": "hi"}).event)
    assert "payload" in caplog.text and "ref" in caplog.text


def test_the_default_input_is_the_event_and_its_payload(tmp_path: Path) -> None:
    trigger = only(load(tmp_path, {"name": "t"}))
    item = event("default", "user_created", {"id": "u1"})
    assert trigger.initial_context(item.event) == {"event": item.event, "input": {"id": "u1"}}


def test_an_input_mapping_fills_the_seed_names(tmp_path: Path) -> None:
    trigger = only(
        load(tmp_path, {"name": "t", "input": {"eventName": "type", "userID": "payload.id"}})
    )
    context = trigger.initial_context(event("default", "user_created", {"id": "user123"}).event)
    assert context == {"eventName": "user_created", "userID": "user123"}


def test_a_mapping_that_does_not_fit_the_event_names_the_key(tmp_path: Path) -> None:
    trigger = only(load(tmp_path, {"name": "t", "input": {"userID": "payload.user.id"}}))
    with pytest.raises(FlowError, match=r"triggers\[t\]\.input\.userID") as info:
        trigger.initial_context(event("default", "user_created", {"id": "u"}).event)
    assert "user" in str(info.value)


def test_dedupe_keys_are_text_and_long_ones_are_hashed(tmp_path: Path) -> None:
    trigger = only(load(tmp_path, {"name": "t", "dedupe": "payload.key"}))
    assert trigger.dedupe_key({"payload": {"key": "abc"}}) == "abc"
    assert trigger.dedupe_key({"payload": {"key": {"b": 1, "a": 2}}}) == '{"a": 2, "b": 1}'
    long = trigger.dedupe_key({"payload": {"key": "x" * 1000}})
    assert long is not None and long.startswith("sha256:") and len(long) < 100
    assert trigger.dedupe_key({"payload": {"key": None}}) is None
    assert trigger.dedupe_key({"payload": {}}) is None  # logged, not deduplicated
    assert only(load(tmp_path, {"name": "u"})).dedupe_key({"payload": {"key": 1}}) is None


def test_the_seed_flow_loads_unchanged_as_a_trigger_flow(tmp_path: Path) -> None:
    trigger = only(load(tmp_path, {"name": "seed", "flow": str(SAMPLE_FLOW)}))
    assert trigger.flow.name == "NotifyAndLogFlow"


def test_every_problem_of_the_triggers_is_reported_at_once(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        textwrap.dedent(
            """\
            name: "Broken"
            tasks:
              - id: "a"
                type: "no_such_task"
            """
        )
    )
    with pytest.raises(TriggerError) as info:
        load(
            tmp_path,
            {"name": "missing", "flow": str(tmp_path / "nope.yaml")},
            {"name": "wrong-source", "match": {"source": "gitlab"}},
            {"name": "bad-expr", "match": {"expression": "payload.ref =="}},
            {"name": "bad-input", "input": {"x": "payload.("}},
            {"name": "bad-flow", "flow": str(broken)},
        )
    text = str(info.value)
    assert 'triggers[missing].flow: no flow file "' in text and "nope.yaml" in text
    assert (
        'triggers[wrong-source].match.source: "gitlab" matches no configured webhook source '
        "(sources: default, github)" in text
    )
    assert "triggers[bad-expr].match.expression:" in text
    assert "triggers[bad-input].input.x:" in text
    assert "triggers[bad-flow].flow:" in text and "broken.yaml:3: tasks[a].type" in text
    assert 'unknown task type "no_such_task"' in text
    assert len(info.value.problems) == 5


def test_trigger_names_are_unique_and_the_timeout_positive(tmp_path: Path) -> None:
    from mfo_client.config import ConfigError

    with pytest.raises(ConfigError, match='two triggers are named "t"'):
        make_config(tmp_path, [{"name": "t"}, {"name": "t"}])
    with pytest.raises(ConfigError, match=r"triggers\[0\]\.respond_timeout: must be more than 0s"):
        make_config(tmp_path, [{"name": "t", "respond_timeout": "0s"}])
    with pytest.raises(ConfigError, match=r"triggers\[0\]\.dedupe: "):
        make_config(tmp_path, [{"name": "t", "dedupe": ""}])


def test_a_dedupe_value_of_any_shape_never_breaks_intake(tmp_path: Path) -> None:
    trigger = only(load(tmp_path, {"name": "t", "dedupe": "{1: 'x', 'a': payload.id}"}))
    assert trigger.dedupe_key({"payload": {"id": 7}}) == '{"1": "x", "a": 7}'


def test_a_template_given_where_an_expression_belongs_gets_a_hint(tmp_path: Path) -> None:
    with pytest.raises(TriggerError, match=r"not templates: write payload\.x"):
        load(tmp_path, {"name": "t", "input": {"b": "{{ payload.x }} and more"}})
