"""Taskflows: YAML-defined DAGs of tasks, validated before they run, executed concurrently.

`load_flow(path)` reads a definition, `build_flow(definition, registry)` checks it against the
task types, and `FlowExecutor(registry, concurrency, clients).execute_flow(...)` runs it. Tasks
reach the MFO server through `FlowContext.mfo`; this package knows nothing of webhooks or the
delivery store. Runs can be recorded in a `RunHistory` (`SQLiteRunHistory`, `RedisRunHistory`;
`open_history` picks the one a config names), resumed with `resume_run` and run anew with
`retry_run`.
"""

from __future__ import annotations

from mfo_client.flows._build import BuiltFlow, build_flow
from mfo_client.flows._context import FlowClients, FlowContext, TaskInfo
from mfo_client.flows._definition import FlowDefinition, RetrySpec, TaskDefinition
from mfo_client.flows._errors import (
    FlowDefinitionError,
    FlowError,
    FlowProblem,
    MissingClientError,
    TaskError,
    TemplateError,
    UnknownTaskTypeError,
)
from mfo_client.flows._executor import ExecutionOptions, FlowExecutor, run_flow
from mfo_client.flows._expressions import check_expression, evaluate, is_true
from mfo_client.flows._graph import to_dot, to_mermaid
from mfo_client.flows._history import (
    DEFAULT_HISTORY_PATH,
    RunHistory,
    RunHistoryError,
    RunRecord,
    RunState,
    TaskRecord,
    owner_alive,
    resume_run,
    retry_run,
    this_process,
)
from mfo_client.flows._history_open import open_history
from mfo_client.flows._history_redis import RedisRunHistory
from mfo_client.flows._history_sqlite import SQLiteRunHistory
from mfo_client.flows._loader import load_flow, parse_flow
from mfo_client.flows._registry import ENTRY_POINT_GROUP, TaskCallable, TaskFactory, TaskRegistry
from mfo_client.flows._result import FlowResult, RunStatus, TaskResult, TaskStatus
from mfo_client.flows._secrets import Redactor, SecretScope
from mfo_client.flows._templates import render_config

__all__ = [
    "DEFAULT_HISTORY_PATH",
    "ENTRY_POINT_GROUP",
    "BuiltFlow",
    "ExecutionOptions",
    "FlowClients",
    "FlowContext",
    "FlowDefinition",
    "FlowDefinitionError",
    "FlowError",
    "FlowExecutor",
    "FlowProblem",
    "FlowResult",
    "MissingClientError",
    "Redactor",
    "RedisRunHistory",
    "RetrySpec",
    "RunHistory",
    "RunHistoryError",
    "RunRecord",
    "RunState",
    "RunStatus",
    "SQLiteRunHistory",
    "SecretScope",
    "TaskCallable",
    "TaskDefinition",
    "TaskError",
    "TaskFactory",
    "TaskInfo",
    "TaskRecord",
    "TaskRegistry",
    "TaskResult",
    "TaskStatus",
    "TemplateError",
    "UnknownTaskTypeError",
    "build_flow",
    "check_expression",
    "evaluate",
    "is_true",
    "load_flow",
    "open_history",
    "owner_alive",
    "parse_flow",
    "render_config",
    "resume_run",
    "retry_run",
    "run_flow",
    "this_process",
    "to_dot",
    "to_mermaid",
]
