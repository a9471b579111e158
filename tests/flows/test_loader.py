"""Loading flow YAML: the seed files unchanged, and every problem located, all at once."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from mfo_client.flows._errors import FlowDefinitionError, FlowProblem
from mfo_client.flows._loader import load_flow, parse_flow

FLOWS = Path(__file__).parent.parent / "data" / "flows"


def problems(text: str) -> list[str]:
    """Every problem parse_flow reports for `text` (dedented), as printed."""
    with pytest.raises(FlowDefinitionError) as caught:
        parse_flow(textwrap.dedent(text), "flow.yaml")
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(problem) for problem in caught.value.problems]


# --- the seed files -------------------------------------------------------------------------


def test_sample_flow_loads_unchanged_with_its_edge_merged() -> None:
    flow = load_flow(FLOWS / "sample_flow.yaml")
    assert flow.name == "NotifyAndLogFlow"
    assert flow.description == "A simple flow to send a notification and then log the event."
    assert [t.id for t in flow.tasks] == ["send_notification_task", "log_event_task"]
    assert [t.type for t in flow.tasks] == ["system_notify_task", "simple_log_task"]
    assert flow.tasks[0].config == {
        "recipient": "admin@example.com",
        "message_template": "Event {{.eventName}} received for user {{.userID}}.",
    }
    # Declared twice (a successor and a dependency), one edge.
    assert flow.predecessors() == {
        "send_notification_task": set(),
        "log_event_task": {"send_notification_task"},
    }
    assert flow.source == str(FLOWS / "sample_flow.yaml")
    assert flow.lines == {"send_notification_task": 4, "log_event_task": 12}


def test_data_pipeline_loads_as_a_chain_of_four() -> None:
    flow = load_flow(FLOWS / "data_pipeline_flow.yaml")
    assert flow.name == "DataIngestionPipeline"
    assert len(flow.tasks) == 4
    assert flow.predecessors() == {
        "fetch_external_data": set(),
        "transform_fetched_data": {"fetch_external_data"},
        "store_data_mfo": {"transform_fetched_data"},
        "notify_completion_mfo": {"store_data_mfo"},
    }
    assert flow.tasks[0].config["timeout"] == "10s"  # task config stays as written
    assert flow.lines == {
        "fetch_external_data": 4,
        "transform_fetched_data": 12,
        "store_data_mfo": 22,
        "notify_completion_mfo": 32,
    }


def test_parse_flow_names_its_source() -> None:
    flow = parse_flow((FLOWS / "sample_flow.yaml").read_text(encoding="utf-8"))
    assert flow.source == "<string>"
    assert len(flow.tasks) == 2


def test_our_optional_keys_load() -> None:
    flow = parse_flow(
        textwrap.dedent(
            """\
            name: f
            timeout: 5m
            tasks:
              - id: a
                type: t
                retry: {attempts: 3, backoff: 2s, multiplier: 3, max_backoff: 1m}
                timeout: 30s
                priority: 5
                when: input.count > 3
            """
        )
    )
    task = flow.tasks[0]
    assert flow.timeout == timedelta(minutes=5)
    assert task.retry is not None
    assert (task.retry.attempts, task.retry.backoff) == (3, timedelta(seconds=2))
    assert (task.timeout, task.priority, task.when) == (timedelta(seconds=30), 5, "input.count > 3")


def test_empty_keys_mean_none() -> None:
    flow = parse_flow("name: f\ntasks:\n  - id: a\n    type: t\n    config:\n    successors:\n")
    assert (flow.tasks[0].config, flow.tasks[0].successors) == ({}, [])


# --- the file as a whole --------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column() -> None:
    assert problems("name: f\ntasks:\n  - id: [a\n") == [
        "flow.yaml:4: invalid YAML: while parsing a flow sequence, expected ',' or ']', "
        "but got '<stream end>' (column 1)"
    ]


def test_yaml_syntax_error_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: f\n  tasks: x\n", encoding="utf-8")
    with pytest.raises(FlowDefinitionError) as caught:
        load_flow(path)
    assert caught.value.problems == [
        FlowProblem(
            str(path), "invalid YAML: mapping values are not allowed here (column 8)", line=2
        )
    ]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FlowDefinitionError) as caught:
        load_flow(tmp_path / "nope.yaml")
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path / 'nope.yaml'}: file not found"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "flow.yaml: the file is empty; a flow is a mapping with a name and a list of tasks"),
        (
            "- a\n- b\n",
            "flow.yaml:1: the top level is a list; a flow is a mapping with a name and a list "
            "of tasks",
        ),
        (
            "just text\n",
            'flow.yaml:1: the top level is "just text"; a flow is a mapping with a name and a '
            "list of tasks",
        ),
    ],
)
def test_top_level_must_be_a_mapping(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_missing_name_and_tasks() -> None:
    assert problems("description: nothing yet\n") == [
        "flow.yaml:1: name: required, but not set",
        "flow.yaml:1: tasks: required, but not set",
    ]


def test_empty_name_and_task_list() -> None:
    assert problems('name: ""\ntasks: []\n') == [
        "flow.yaml:1: name: must not be empty",
        "flow.yaml:2: tasks: must list at least one task",
    ]


def test_unknown_top_level_keys() -> None:
    assert problems(
        """\
        name: f
        descripton: x
        lines: {}
        tasks:
          - {id: a, type: t}
        """
    ) == [
        'flow.yaml:2: descripton: unknown key (did you mean "description"?)',
        "flow.yaml:3: lines: unknown key; allowed keys: name, description, tasks, timeout, "
        "secrets, env",
    ]


# --- tasks ----------------------------------------------------------------------------------


def test_task_without_id_or_type() -> None:
    assert problems(
        """\
        name: f
        tasks:
          - id: a
            type: t
          - name: nameless
          - id: b
        """
    ) == [
        "flow.yaml:5: tasks[1].id: required, but not set",
        "flow.yaml:5: tasks[1].type: required, but not set",
        "flow.yaml:6: tasks[b].type: required, but not set",
    ]


def test_bad_types_name_the_task_by_id() -> None:
    assert problems(
        """\
        name: f
        tasks:
          - id: a
            type: 3
            config: [1, 2]
            successors: b
            priority: high
            timeout: soon
            retry:
              attempts: 0
          - 5
          - id: 2nd
            type: t
        """
    ) == [
        "flow.yaml:4: tasks[a].type: must be a string, got 3 (quote the value in YAML)",
        "flow.yaml:5: tasks[a].config: must be a mapping of keys, got a list",
        'flow.yaml:6: tasks[a].successors: must be a list, got "b"',
        'flow.yaml:7: tasks[a].priority: must be a whole number, got "high"',
        'flow.yaml:8: tasks[a].timeout: not a duration: "soon" '
        "(use Go-style durations such as 250ms, 30s, 1m, 1h30m)",
        "flow.yaml:10: tasks[a].retry.attempts: must be >= 1, got 0",
        "flow.yaml:11: tasks[1]: must be a mapping of keys, got 5",
        'flow.yaml:12: tasks[2nd].id: must start with a letter or "_" and use only letters, '
        'digits, "_" and "-" (a "." would read as a path in templates), got "2nd"',
    ]


def test_unknown_task_keys_suggest_the_right_one() -> None:
    assert problems(
        """\
        name: f
        tasks:
          - id: a
            type: t
          - id: b
            type: t
            dependancies: [a]
            retry: {attempts: 2, backof: 1s}
            colour: red
        """
    ) == [
        'flow.yaml:7: tasks[b].dependancies: unknown key (did you mean "dependencies"?)',
        'flow.yaml:8: tasks[b].retry.backof: unknown key (did you mean "backoff"?)',
        "flow.yaml:9: tasks[b].colour: unknown key; allowed keys: id, type, name, config, "
        "successors, dependencies, retry, timeout, priority, when, for_each, max_parallel",
    ]


def test_duplicate_ids_name_both_lines() -> None:
    assert problems(
        """\
        name: f
        tasks:
          - id: a
            type: t
          - id: b
            type: t
          - id: a
            type: u
        """
    ) == ['flow.yaml:7: tasks[2].id: duplicate task id "a", first used on line 3']


# --- edges ----------------------------------------------------------------------------------


def test_edges_to_unknown_ids_name_the_id_and_a_close_match() -> None:
    assert problems(
        """\
        name: f
        tasks:
          - id: send_notification_task
            type: t
            successors:
              - log_evnt_task
          - id: log_event_task
            type: t
            dependencies: [send_notification_task, zzz]
        """
    ) == [
        'flow.yaml:6: tasks[send_notification_task].successors[0]: successor "log_evnt_task" '
        'is not a task of this flow (did you mean "log_event_task"?)',
        'flow.yaml:9: tasks[log_event_task].dependencies[1]: dependency "zzz" is not a task of '
        "this flow; its tasks are: send_notification_task, log_event_task",
    ]


def test_self_edges() -> None:
    assert problems(
        """\
        name: f
        tasks:
          - id: a
            type: t
            successors: [a]
            dependencies:
              - a
        """
    ) == [
        "flow.yaml:5: tasks[a].successors[0]: a task cannot be its own successor",
        "flow.yaml:7: tasks[a].dependencies[0]: a task cannot depend on itself",
    ]


def test_cycle_names_its_tasks_in_order() -> None:
    assert problems(
        """\
        name: f
        tasks:
          - id: start
            type: t
            successors: [a]
          - id: c
            type: t
            successors: [a]
          - id: a
            type: t
            successors: [b]
          - id: b
            type: t
            dependencies: [a]
            successors: [c]
        """
    ) == [
        "flow.yaml:6: tasks[c]: the tasks form a cycle: c -> a -> b -> c "
        "(each waits for the one before it)"
    ]


def test_every_cycle_is_reported() -> None:
    assert problems(
        """\
        name: f
        tasks:
          - {id: a, type: t, successors: [b]}
          - {id: b, type: t, successors: [a]}
          - {id: c, type: t, dependencies: [d]}
          - {id: d, type: t, dependencies: [c]}
        """
    ) == [
        "flow.yaml:3: tasks[a]: the tasks form a cycle: a -> b -> a "
        "(each waits for the one before it)",
        "flow.yaml:5: tasks[c]: the tasks form a cycle: c -> d -> c "
        "(each waits for the one before it)",
    ]


# --- everything at once ---------------------------------------------------------------------


def test_all_problems_are_reported_together_in_reading_order() -> None:
    assert problems(
        """\
        name: f
        tasks:
          - id: fetch
            type: http_get_task
            dependancies: [store]
            successors: [transfrom]
          - id: transform
            type: t
            successors: [store]
            retry: {attempts: zero}
          - id: store
            type: t
            successors: [transform]
          - id: fetch
        """
    ) == [
        'flow.yaml:5: tasks[fetch].dependancies: unknown key (did you mean "dependencies"?)',
        'flow.yaml:6: tasks[fetch].successors[0]: successor "transfrom" is not a task of this '
        'flow (did you mean "transform"?)',
        "flow.yaml:7: tasks[transform]: the tasks form a cycle: transform -> store -> transform "
        "(each waits for the one before it)",
        'flow.yaml:10: tasks[transform].retry.attempts: must be a whole number, got "zero"',
        "flow.yaml:14: tasks[3].type: required, but not set",
        'flow.yaml:14: tasks[3].id: duplicate task id "fetch", first used on line 3',
    ]
