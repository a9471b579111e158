"""`${VAR}` in task configs and the redaction of secret values from what a run reports.

A real local server receives the requests, the history is a real SQLite file, and the token is
looked for where a user would look: the result, the observer's copies, the history read back
(and the file's bytes), the trace, and the log records.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mfo_client.config import Config
from mfo_client.flows import (
    ExecutionOptions,
    FlowClients,
    FlowContext,
    FlowDefinitionError,
    FlowExecutor,
    Redactor,
    RunStatus,
    SecretScope,
    SQLiteRunHistory,
    TaskCallable,
    TaskRegistry,
    TaskResult,
    TaskStatus,
    build_flow,
    load_flow,
    parse_flow,
    render_config,
)
from mfo_client.flows._trace import chrome_trace
from mfo_client.flows.tasks import builtin_registry
from tests._servers import run_app

SEED_FLOWS = Path(__file__).parents[1] / "data" / "flows"


# --- the server: echoes the Authorization header it got -----------------------------------------


class Echo:
    def __init__(self) -> None:
        self.authorizations: list[str | None] = []

    async def echo(self, request: Request) -> Response:
        self.authorizations.append(request.headers.get("authorization"))
        return JSONResponse({"authorization": request.headers.get("authorization")})

    async def refuse(self, request: Request) -> Response:
        self.authorizations.append(request.headers.get("authorization"))
        return PlainTextResponse("no", status_code=403)


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, Echo]]:
    server = Echo()
    app = Starlette(routes=[Route("/echo", server.echo), Route("/refuse", server.refuse)])
    with run_app(app) as url:
        yield url, server


@pytest.fixture
def token() -> str:
    return "tok_" + secrets.token_hex(16)


def check_auth(config: Mapping[str, Any]) -> TaskCallable:
    """A test task: compares what the upstream fetch got with the header it was given."""

    def run(ctx: FlowContext) -> dict[str, Any]:
        seen = ctx.get("fetch.body.authorization")
        ctx.log.info("upstream sent %s", seen)
        return {"matches": seen == config["expected"], "seen": seen}

    return run


def echo_config(config: Mapping[str, Any]) -> TaskCallable:
    """A test task whose outputs are its rendered config."""

    def run(ctx: FlowContext) -> dict[str, Any]:
        return dict(config)

    return run


def leaky(config: Mapping[str, Any]) -> TaskCallable:
    """A test task logging a failure whose message and traceback hold its `key`."""

    async def run(ctx: FlowContext) -> None:
        try:
            raise RuntimeError(f"refused {config['key']}")
        except RuntimeError:
            ctx.log.exception("calling with %s failed", config["key"])

    return run


def registry() -> TaskRegistry:
    reg = builtin_registry()
    reg.register("check_auth", check_auth)
    reg.register("echo_config", echo_config)
    reg.register("leaky", leaky)
    return reg


FLOW = """\
name: Secretive
secrets: [TEST_TOKEN]
env: [BASE_URL]
tasks:
  - id: fetch
    type: http_get_task
    config:
      url: "${BASE_URL}/echo?key=${TEST_TOKEN}"
      headers: {Authorization: "Bearer ${TEST_TOKEN}"}
      allow_hosts: ["127.0.0.1"]
  - id: check
    type: check_auth
    dependencies: [fetch]
    config: {expected: "Bearer ${TEST_TOKEN}"}
  - id: say
    type: simple_log_task
    dependencies: [fetch]
    config: {log_message: "fetched with {{ fetch.body.authorization }}"}
  - id: refused
    type: http_get_task
    retry: {attempts: 2, backoff: 1ms}
    config:
      url: "${BASE_URL}/refuse?key=${TEST_TOKEN}"
      allow_hosts: ["127.0.0.1"]
"""


def text_of(value: Any) -> str:
    return json.dumps(value, default=str)


async def test_a_secret_reaches_the_server_but_nothing_the_run_reports(
    echo: tuple[str, Echo],
    token: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, server = echo
    monkeypatch.setenv("TEST_TOKEN", token)
    monkeypatch.setenv("BASE_URL", url)
    file = tmp_path / "secretive.yaml"
    file.write_text(FLOW, encoding="utf-8")
    built = build_flow(load_flow(file), registry())
    seen: list[TaskResult] = []
    db = tmp_path / "runs.db"
    caplog.set_level(logging.INFO)
    # `configure_logging` (run by other tests in this process) quiets httpx: undo that here.
    caplog.set_level(logging.INFO, logger="httpx")
    async with SQLiteRunHistory(db) as history:
        result = await FlowExecutor(registry()).execute_flow(
            built.definition,
            {},
            ExecutionOptions(observer=lambda r: seen.append(copy.deepcopy(r)), history=history),
        )
        record = await history.get_run(result.run_id)

    # The requests carried the real token, and the task downstream got the real outputs.
    assert server.authorizations[0] == f"Bearer {token}"
    assert result.tasks["check"].outputs["matches"] is True
    # What the run reports has *** in its place.
    fetch = result.tasks["fetch"]
    assert fetch.outputs["body"] == {"authorization": "Bearer ***"}
    assert fetch.outputs["url"] == f"{url}/echo?key=***"
    assert result.tasks["check"].outputs["seen"] == "Bearer ***"
    assert result.tasks["say"].outputs == {"message": "fetched with Bearer ***"}
    refused = result.tasks["refused"]
    assert (refused.status, refused.attempts) == (TaskStatus.FAILED, 2)
    assert refused.error == f"GET {url}/refuse?key=*** returned HTTP 403 Forbidden"
    assert result.status is RunStatus.FAILED
    assert token not in text_of(dataclasses.asdict(result))
    assert seen and token not in text_of([dataclasses.asdict(r) for r in seen])

    assert record is not None
    assert token not in text_of(dataclasses.asdict(record))
    assert {t.task_id: t.outputs.get("seen") for t in record.tasks}["check"] == "Bearer ***"
    # The history keeps the definition as written, `${...}` and all.
    headers = record.definition["tasks"][0]["config"]["headers"]
    assert headers == {"Authorization": "Bearer ${TEST_TOKEN}"}
    assert not any(token.encode() in f.read_bytes() for f in tmp_path.glob("runs.db*"))

    trace = text_of(chrome_trace(record))
    assert "refuse?key=***" in trace
    assert token not in trace

    logged = [r.getMessage() for r in caplog.records]
    assert "upstream sent Bearer ***" in logged
    assert "fetched with Bearer ***" in logged
    assert any("refuse?key=***" in line for line in logged)  # the retry warning, the failure
    assert any(r.name == "httpx" and "echo?key=***" in r.getMessage() for r in caplog.records)
    assert not [line for line in logged if token in line]


async def test_values_from_event_data_are_never_expanded(token: str) -> None:
    flow = parse_flow(
        """\
        name: Injected
        secrets: [TEST_TOKEN]
        env: [REGION]
        tasks:
          - id: a
            type: simple_log_task
            config: {log_message: "{{ payload.text }} in ${REGION}"}
          - id: b
            type: simple_log_task
            dependencies: [a]
            config: {log_message: "{{ a.message }}|${TEST_TOKEN}"}
          - id: c
            type: echo_config
            config: {value: "{{ payload }}", text: "${REGION}: {{ payload.text }}"}
        """.replace("        ", ""),
        "injected.yaml",
    )
    environ = {"TEST_TOKEN": token, "REGION": "eu-west-1"}
    payload = {"text": "${TEST_TOKEN} ${HOME} $${REGION}"}
    result = await FlowExecutor(registry()).execute_flow(
        flow, {"payload": payload}, ExecutionOptions(environ=environ)
    )
    assert result.succeeded, result.error
    assert result.tasks["a"].outputs["message"] == "${TEST_TOKEN} ${HOME} $${REGION} in eu-west-1"
    assert (
        result.tasks["b"].outputs["message"] == "${TEST_TOKEN} ${HOME} $${REGION} in eu-west-1|***"
    )
    assert result.tasks["c"].outputs == {
        "value": payload,
        "text": "eu-west-1: ${TEST_TOKEN} ${HOME} $${REGION}",
    }


async def test_a_secret_value_is_data_to_templates_never_template_source() -> None:
    flow = parse_flow(
        "name: f\nsecrets: [TEST_TOKEN]\ntasks:\n"
        "  - {id: a, type: simple_log_task, config: {log_message: '{{.who}}: ${TEST_TOKEN}'}}\n",
        "f.yaml",
    )
    value = "{{ who * 3 }}{% raw %}"
    result = await FlowExecutor(registry()).execute_flow(
        flow, {"who": "ann"}, ExecutionOptions(environ={"TEST_TOKEN": value})
    )
    assert result.succeeded, result.error
    assert result.tasks["a"].outputs["message"] == "ann: ***"
    scope = SecretScope.for_run(flow, environ={"TEST_TOKEN": value})
    config = {"log_message": "{{.who}}: ${TEST_TOKEN} ($$5)"}
    rendered = render_config(config, {"who": "ann"}, task_id="a", flow="f", scope=scope)
    assert rendered == {"log_message": "ann: {{ who * 3 }}{% raw %} ($5)"}


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        (
            "secrets: [TEST_TOKEN]\n",
            'environment variable "TEST_TOKEN" is not set '
            "(set it, or give a default: ${TEST_TOKEN:-default})",
        ),
        (
            "",
            'environment variable "TEST_TOKEN" is not declared: list it under "secrets:" '
            '(its value is then hidden from what the run reports) or "env:" (not secret) at the '
            'top of the flow file, or under "flows.secrets" in the config',
        ),
    ],
)
async def test_a_variable_that_cannot_be_read_fails_its_task_saying_where(
    tmp_path: Path, declared: str, problem: str
) -> None:
    file = tmp_path / "needs.yaml"
    file.write_text(
        f"name: Needs\n{declared}tasks:\n"
        "  - id: call\n    type: simple_log_task\n"
        "    config: {log_message: 'Bearer ${TEST_TOKEN}'}\n",
        encoding="utf-8",
    )
    flow = build_flow(load_flow(file), registry()).definition
    result = await FlowExecutor(registry()).execute_flow(flow, {}, ExecutionOptions(environ={}))
    assert result.tasks["call"].status is TaskStatus.FAILED
    assert result.tasks["call"].error == (
        f'flow "Needs" ({file}), task "call", config.log_message: {problem}'
    )


async def test_defaults_and_dollar_escapes() -> None:
    flow = parse_flow(
        "name: f\nenv: [REGION, EMPTY]\ntasks:\n  - id: a\n    type: simple_log_task\n"
        "    config: {log_message: '${REGION:-eu} ${EMPTY:-none} $$HOME ${EMPTY} $5'}\n",
        "f.yaml",
    )
    result = await FlowExecutor(registry()).execute_flow(
        flow, {}, ExecutionOptions(environ={"EMPTY": ""})
    )
    assert result.tasks["a"].outputs["message"] == "eu none $HOME  $5"


def test_a_malformed_reference_is_refused_before_the_run() -> None:
    flow = parse_flow(
        "name: f\ntasks:\n  - id: a\n    type: simple_log_task\n"
        "    config: {log_message: 'cost ${TOTAL-1}'}\n",
        "f.yaml",
    )
    with pytest.raises(FlowDefinitionError) as caught:
        build_flow(flow, registry())
    assert [str(p) for p in caught.value.problems] == [
        'f.yaml:3: tasks[a].config.log_message: malformed "${": write ${NAME} or '
        '${NAME:-default}, or $$ for a literal "$"'
    ]


@pytest.mark.parametrize(
    ("yaml", "problem"),
    [
        ("secrets: [TOKEN, 2FA]\n", 'f.yaml:2: secrets[1]: "2FA" is not an environment variable'),
        ("secrets: [TOKEN]\nenv: [TOKEN]\n", "f.yaml:3: env: TOKEN also listed under secrets"),
    ],
)
def test_declarations_are_checked_when_loaded(yaml: str, problem: str) -> None:
    with pytest.raises(FlowDefinitionError) as caught:
        parse_flow(f"name: f\n{yaml}tasks:\n  - {{id: a, type: t}}\n", "f.yaml")
    assert str(caught.value).startswith(problem)


def test_empty_declarations_mean_none() -> None:
    flow = parse_flow("name: f\nsecrets:\nenv:\n#  - TOKEN\ntasks:\n  - {id: a, type: t}\n")
    assert (flow.secrets, flow.env) == ([], [])


def test_the_seed_flows_load_unchanged_and_declare_nothing() -> None:
    for file in sorted(SEED_FLOWS.glob("*.yaml")):
        flow = build_flow(load_flow(file), builtin_registry()).definition
        assert (flow.secrets, flow.env) == ([], []), file
        assert "${" not in text_of(flow.model_dump(mode="json"))


async def test_config_secrets_and_flows_secrets(token: str) -> None:
    config = Config.from_mapping(
        {"client": {"auth_token": "mfo-" + token}, "flows": {"secrets": ["CFG_KEY"]}}
    )
    clients = FlowClients.from_config(config)
    try:
        assert clients.secret_env == ("CFG_KEY",)
        flow = parse_flow(
            "name: f\ntasks:\n  - id: a\n    type: simple_log_task\n"
            "    config: {log_message: 'key ${CFG_KEY}, given {{ input.token }}'}\n",
            "f.yaml",
        )
        result = await FlowExecutor(registry(), clients=clients).execute_flow(
            flow,
            {"input": {"token": "mfo-" + token}},
            ExecutionOptions(environ={"CFG_KEY": "k-" + token}, secrets=["extra-" + token]),
        )
    finally:
        await clients.aclose()
    assert result.tasks["a"].outputs["message"] == "key ***, given ***"


async def test_a_subflow_shares_the_scope_of_its_parent(token: str, tmp_path: Path) -> None:
    flow = parse_flow(
        """\
name: Parent
secrets: [TEST_TOKEN]
tasks:
  - id: child
    type: subflow
    config:
      input: {auth: "Bearer ${TEST_TOKEN}"}
      tasks:
        - id: say
          type: simple_log_task
          config: {log_message: "{{ auth }} / ${TEST_TOKEN}"}
""",
        "parent.yaml",
    )
    db = tmp_path / "runs.db"
    async with SQLiteRunHistory(db) as history:
        result = await FlowExecutor(registry()).execute_flow(
            flow, {}, ExecutionOptions(environ={"TEST_TOKEN": token}, history=history)
        )
    assert result.succeeded, result.tasks["child"].error
    assert result.tasks["child"].outputs["say"] == {"message": "Bearer *** / ***"}
    assert not any(token.encode() in f.read_bytes() for f in tmp_path.glob("runs.db*"))


def test_the_redactor() -> None:
    redactor = Redactor(["abc", "secret", "secret-longer"])  # "abc" is too short to hide
    assert redactor.text("abc secret secret-longer") == "abc *** ***"

    class Holder:
        def __str__(self) -> str:
            return "holds secret"

    holder = Holder()
    value = {"secret": ["a secret", ("secret",), 7, None, holder], "plain": holder}
    assert redactor.value(value) == {
        "***": ["a ***", ("***",), 7, None, "holds ***"],
        "plain": "holds ***",
    }
    empty = Redactor()
    assert not empty and empty.value(value) is value


def test_outside_a_run_render_config_leaves_variables_as_written() -> None:
    config = {"url": "${BASE_URL}/{{ id }}", "cost": "$$5"}
    rendered = render_config(config, {"id": 7}, task_id="a", flow="f")
    assert rendered == {"url": "${BASE_URL}/7", "cost": "$$5"}


async def test_ctx_log_redacts_messages_and_tracebacks(
    token: str, caplog: pytest.LogCaptureFixture
) -> None:
    flow = parse_flow(
        "name: f\nsecrets: [T]\ntasks:\n  - {id: a, type: leaky, config: {key: '${T}'}}\n",
        "f.yaml",
    )
    caplog.set_level(logging.INFO, logger="mfo_client.flows")
    result = await FlowExecutor(registry()).execute_flow(
        flow, {}, ExecutionOptions(environ={"T": token})
    )
    assert result.succeeded
    [record] = [r for r in caplog.records if r.name == "mfo_client.flows"]
    message = record.getMessage()
    assert message.startswith("calling with *** failed\nTraceback")
    assert message.endswith("RuntimeError: refused ***")
    assert record.funcName == "run"  # the task's line, not the adapter's
    assert token not in caplog.text
