"""What a run would do, without running anything (`mfo flow run --dry-run`).

Before a run, the initial context is all the data there is: an upstream task's outputs do not
exist yet. So each task's config is rendered against the initial context plus, for every task
upstream of it, a placeholder (`FilledAtRunTime`) that reads any key and shows as
`<filled at run time: fetch.body.id>`. What is left undefined then is either a missing input
(the run would fail on it: a problem) or an output of a task that is not upstream, whose value
would depend on timing (a problem too). A template that cannot work on a placeholder (a filter
that needs the real value) is shown as written, to be rendered when the task runs. Each config
string is rendered on its own, so one such template hides no problem of another.

`when:`, `for_each:` and a condition's `expression` are evaluated the same way, for their
problems only; a `for_each` task's `item` and `index` are placeholders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mfo_client.flows._build import BuiltFlow
from mfo_client.flows._control import CONDITION, SUBFLOW
from mfo_client.flows._errors import TemplateError
from mfo_client.flows._executor import hidden_keys
from mfo_client.flows._expressions import evaluate
from mfo_client.flows._secrets import SecretScope
from mfo_client.flows._templates import _render

__all__ = ["FilledAtRunTime", "TaskPreview", "preview_flow"]


class FilledAtRunTime:
    """A value only a run can give (an upstream task's output); every key and attribute of it
    is one too."""

    __slots__ = ("_path",)

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> FilledAtRunTime:
        if name.startswith("_"):
            raise AttributeError(name)
        return FilledAtRunTime(f"{self._path}.{name}")

    def __getitem__(self, key: Any) -> FilledAtRunTime:
        if isinstance(key, str) and key.isidentifier():
            return FilledAtRunTime(f"{self._path}.{key}")
        return FilledAtRunTime(f"{self._path}[{key!r}]")

    def __str__(self) -> str:
        return f"<filled at run time: {self._path}>"

    __repr__ = __str__


@dataclass(slots=True)
class TaskPreview:
    id: str
    type: str
    after: tuple[str, ...]
    """Its direct predecessors."""
    config: dict[str, Any] = field(default_factory=dict)
    """The rendered config (placeholders where upstream outputs go, strings in `notes` as
    written), secrets redacted."""
    notes: list[str] = field(default_factory=list)
    """The config strings shown as written, and why: they need the values upstream gives."""
    when: str | None = None
    problems: list[str] = field(default_factory=list)
    """What would fail the task whatever upstream gives: a missing input, a task's output read
    without depending on the task. Each message names the flow, task and key."""


def preview_flow(
    built: BuiltFlow, initial: Mapping[str, Any], scope: SecretScope | None = None
) -> tuple[list[TaskPreview], list[str]]:
    """Each task in run order, and the problems of the run as a whole (a task named like an
    input); `scope` gives `${VAR}` (none are expanded without it)."""
    definition = built.definition
    run_problems: list[str] = []
    if (clash := hidden_keys(definition, initial)) is not None:
        run_problems.append(clash)
    upstream: dict[str, frozenset[str]] = {}
    previews = []
    for tid in built.order:
        preds = built.predecessors[tid]
        upstream[tid] = frozenset(preds).union(*(upstream[p] for p in preds))
        previews.append(_preview(built, tid, upstream[tid], initial, scope))
    return previews, run_problems


def _preview(
    built: BuiltFlow,
    tid: str,
    upstream: frozenset[str],
    initial: Mapping[str, Any],
    scope: SecretScope | None,
) -> TaskPreview:
    task = built.task(tid)
    flow = built.name
    preview = TaskPreview(tid, task.type, tuple(sorted(built.predecessors[tid])), when=task.when)
    data: dict[str, Any] = dict(initial)
    data.update((up, FilledAtRunTime(up)) for up in upstream)
    if task.for_each is not None:
        data.update(item=FilledAtRunTime("item"), index=FilledAtRunTime("index"))
    tasks = {t.id for t in built.definition.tasks}

    def check(exc: TemplateError) -> bool:
        """Record `exc` as a problem if no upstream output could cure it; True if so."""
        variable = exc.details.get("variable")
        if not isinstance(variable, str):
            # Not a missing value: a failure on a placeholder is the run's to find out.
            if upstream or task.for_each is not None:
                return False
            preview.problems.append(exc.message)
            return True
        root = variable.split(".")[0].split("[")[0]
        if root in tasks and root not in upstream:
            preview.problems.append(
                f'{exc.message} (task "{root}" is not upstream of "{tid}", so its outputs may '
                f'not exist yet when "{tid}" runs; add "{root}" to its dependencies)'
            )
        else:
            preview.problems.append(exc.message)
        return True

    expressions = [("when", task.when), ("for_each", task.for_each)]
    if task.type == CONDITION:
        expressions.append(("config.expression", task.config.get("expression")))
    for key, expression in expressions:
        if isinstance(expression, str):
            try:
                evaluate(expression, data, where=f'flow "{flow}", tasks[{tid}].{key}')
            except TemplateError as exc:
                check(exc)
    if task.type == CONDITION:  # nothing to render: its expression was checked above
        preview.config = dict(task.config)
        return preview
    config: Mapping[str, Any] = task.config
    if task.type == SUBFLOW:  # inline tasks render against the child's input, not ours
        config = {"input": task.config.get("input", {})}

    def render(value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, Mapping):
            return {k: render(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [render(v, (*path, i)) for i, v in enumerate(value)]
        try:
            return _render(value, data, path, (tid, flow), scope)
        except TemplateError as exc:
            if not check(exc):
                preview.notes.append(exc.message)
            return value

    rendered = {key: render(value, ("config", key)) for key, value in config.items()}
    preview.config = rendered if scope is None else scope.redactor.value(rendered)
    if task.type == SUBFLOW:
        preview.config = {**task.config, **preview.config}
    return preview
