"""Drawing flows: Mermaid and DOT, one edge per merged predecessor, `when` on the node."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mfo_client.flows._graph import to_dot, to_mermaid
from mfo_client.flows._loader import load_flow, parse_flow

FLOWS = Path(__file__).parent.parent / "data" / "flows"

SAMPLE_MERMAID = """\
---
title: "NotifyAndLogFlow"
---
flowchart TD
    send_notification_task["Send System Notification<br/>system_notify_task"]
    log_event_task["Log Event Details<br/>simple_log_task"]
    send_notification_task --> log_event_task
"""

SAMPLE_DOT = """\
digraph "NotifyAndLogFlow" {
    node [shape=box];
    "send_notification_task" [label="Send System Notification\\nsystem_notify_task"];
    "log_event_task" [label="Log Event Details\\nsimple_log_task"];
    "send_notification_task" -> "log_event_task";
}
"""

PIPELINE_MERMAID = """\
---
title: "DataIngestionPipeline"
---
flowchart TD
    fetch_external_data["Fetch Data from External API<br/>http_get_task"]
    transform_fetched_data["Transform Raw Data<br/>data_transform_task"]
    store_data_mfo["Store Processed Data in MFO Resource<br/>mfo_resource_create_task"]
    notify_completion_mfo["Notify Team via MFO Chat<br/>mfo_chat_send_task"]
    fetch_external_data --> transform_fetched_data
    transform_fetched_data --> store_data_mfo
    store_data_mfo --> notify_completion_mfo
"""

PIPELINE_DOT = """\
digraph "DataIngestionPipeline" {
    node [shape=box];
    "fetch_external_data" [label="Fetch Data from External API\\nhttp_get_task"];
    "transform_fetched_data" [label="Transform Raw Data\\ndata_transform_task"];
    "store_data_mfo" [label="Store Processed Data in MFO Resource\\nmfo_resource_create_task"];
    "notify_completion_mfo" [label="Notify Team via MFO Chat\\nmfo_chat_send_task"];
    "fetch_external_data" -> "transform_fetched_data";
    "transform_fetched_data" -> "store_data_mfo";
    "store_data_mfo" -> "notify_completion_mfo";
}
"""

ODD = textwrap.dedent(
    """\
    name: 'Say "hi" #1'
    tasks:
      - {id: end, type: t, name: 'A <b> & "c" #x'}
      - {id: fetch-data, type: t, dependencies: [end], when: 'input.n > 3'}
      - {id: fetch_data, type: t, successors: [fetch-data]}
      - {id: _a-b, type: 'back\\slash'}
    """
)


def test_sample_flow_as_mermaid_has_one_edge() -> None:
    assert to_mermaid(load_flow(FLOWS / "sample_flow.yaml")) == SAMPLE_MERMAID


def test_sample_flow_as_dot_has_one_edge() -> None:
    assert to_dot(load_flow(FLOWS / "sample_flow.yaml")) == SAMPLE_DOT


def test_data_pipeline_as_mermaid() -> None:
    assert to_mermaid(load_flow(FLOWS / "data_pipeline_flow.yaml")) == PIPELINE_MERMAID


def test_data_pipeline_as_dot() -> None:
    assert to_dot(load_flow(FLOWS / "data_pipeline_flow.yaml")) == PIPELINE_DOT


def test_mermaid_escapes_labels_and_renames_ids_it_cannot_read() -> None:
    assert to_mermaid(parse_flow(ODD)) == textwrap.dedent(
        """\
        ---
        title: "Say \\"hi\\" #1"
        ---
        flowchart TD
            end_["A #lt;b#gt; #amp; #quot;c#quot; #35;x<br/>t"]
            fetch_data_["fetch-data<br/>t<br/>when: input.n #gt; 3"]
            fetch_data["fetch_data<br/>t"]
            _a_b["_a-b<br/>back\\slash"]
            end_ --> fetch_data_
            fetch_data --> fetch_data_
        """
    )


def test_dot_escapes_labels_and_dashes_conditional_tasks() -> None:
    assert to_dot(parse_flow(ODD)) == textwrap.dedent(
        """\
        digraph "Say \\"hi\\" #1" {
            node [shape=box];
            "end" [label="A <b> & \\"c\\" #x\\nt"];
            "fetch-data" [label="fetch-data\\nt\\nwhen: input.n > 3", style=dashed];
            "fetch_data" [label="fetch_data\\nt"];
            "_a-b" [label="_a-b\\nback\\\\slash"];
            "end" -> "fetch-data";
            "fetch_data" -> "fetch-data";
        }
        """
    )
