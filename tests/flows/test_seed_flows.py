"""The seed flows of `tests/data/flows`, unchanged, through the real engine and real servers.

The MFO side is the reference server; `api.external.com` is a local HTTPS server holding a
certificate for that name from a test CA. The run reaches it only through the operator's
`http_get_task` settings (`connect_to` it, and allow loopback): the flow file keeps its public
URL, and the name is never looked up in real DNS (`dns` below fails a test that tries).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mfo_client.api import AsyncMFOClient, CircuitBreakerRegistry
from mfo_client.devserver import DevServerSettings
from mfo_client.flows import (
    FlowClients,
    FlowContext,
    FlowExecutor,
    FlowResult,
    RunStatus,
    TaskError,
    TaskInfo,
    TaskStatus,
    build_flow,
    load_flow,
)
from mfo_client.flows.tasks import builtin_registry
from tests._servers import run_devserver

FLOWS = Path(__file__).parents[1] / "data" / "flows"
TOKEN = "dev-token"
EXTERNAL = "api.external.com"
STARTUP_TIMEOUT = 10.0


def rows_of(data_id: str) -> dict[str, Any]:
    return {"id": data_id, "rows": [{"n": 1, "name": "alpha"}, {"n": 2, "name": "beta"}]}


# --- api.external.com: HTTPS on loopback, with a certificate for the name -----------------------


class External:
    """The fake external API; `hosts` holds the Host header of every request it got."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.app = Starlette(routes=[Route("/data/{id}", self._data)])

    async def _data(self, request: Request) -> Response:
        self.hosts.append(request.headers.get("host", ""))
        return JSONResponse(rows_of(request.path_params["id"]))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def external_server(ca: trustme.CA) -> Iterator[tuple[External, int]]:
    """The app and its port, served like `tests._servers.run_app` but over TLS."""
    external = External()
    cert = ca.issue_cert(EXTERNAL)
    with (
        cert.private_key_and_cert_chain_pem.tempfile() as pem,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock,
    ):
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            external.app,
            log_level="warning",
            lifespan="off",
            ws="none",
            ssl_certfile=pem,
            ssl_keyfile=pem,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-tls", daemon=True
        )
        thread.start()
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the TLS server did not start")
                time.sleep(0.01)
            yield external, sock.getsockname()[1]
        finally:
            server.should_exit = True
            thread.join(STARTUP_TIMEOUT)


@pytest.fixture
def external(external_server: tuple[External, int]) -> External:
    external_server[0].hosts.clear()
    return external_server[0]


@pytest.fixture
def port(external_server: tuple[External, int]) -> int:
    return external_server[1]


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """`api.external.com` -> the addresses a test gives it; a lookup of it otherwise fails the
    test. Every other name goes to the real resolver (only loopback is looked up here)."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.rstrip(".").lower() == EXTERNAL:
            if EXTERNAL not in answers:
                pytest.fail(f"{EXTERNAL} was looked up, and this test gave it no address")
            found = answers[EXTERNAL]
            if not found:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port or 0))
                for a in found
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


# --- the MFO server and the clients -----------------------------------------------------------


@pytest.fixture
def devserver_url() -> Iterator[str]:
    """A server of its own per test: what a run left there is all that is there."""
    with run_devserver(DevServerSettings(port=0)) as url:
        yield url


@pytest.fixture
def api(devserver_url: str) -> Iterator[httpx.Client]:
    """Plain HTTP to the MFO server, to check what a run left there."""
    with httpx.Client(
        base_url=f"{devserver_url}/api", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
async def mfo(devserver_url: str) -> AsyncIterator[AsyncMFOClient]:
    async with AsyncMFOClient(
        f"{devserver_url}/api", auth=TOKEN, breakers=CircuitBreakerRegistry()
    ) as client:
        yield client


@pytest.fixture
async def http(ca: trustme.CA) -> AsyncIterator[httpx.AsyncClient]:
    """Trusting the test CA (and no other), as a deployment's client trusts its CAs."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    async with httpx.AsyncClient(verify=context) as client:
        yield client


def operator_settings(port: int) -> dict[str, Any]:
    return {
        "http_get_task": {
            "allow_hosts": ["127.0.0.1"],
            "connect_to": {f"{EXTERNAL}:443": f"127.0.0.1:{port}"},
        }
    }


async def run_seed(
    name: str, initial: dict[str, Any], clients: FlowClients
) -> tuple[FlowResult, list[str]]:
    """Load, build and run a seed file; its result and its task ids in file order."""
    built = build_flow(load_flow(FLOWS / name), builtin_registry())
    executor = FlowExecutor(builtin_registry(), 4, clients)
    try:
        result = await executor.execute_flow(built.definition, initial)
    finally:
        executor.close()
    return result, [task.id for task in built.definition.tasks]


def statuses(result: FlowResult) -> dict[str, TaskStatus]:
    return {tid: task.status for tid, task in result.tasks.items()}


def items(api: httpx.Client, path: str, **params: str) -> list[dict[str, Any]]:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    found: list[dict[str, Any]] = page["items"]
    return found


# --- data_pipeline_flow.yaml ------------------------------------------------------------------


PIPELINE = "data_pipeline_flow.yaml"
PIPELINE_TASKS = [
    "fetch_external_data",
    "transform_fetched_data",
    "store_data_mfo",
    "notify_completion_mfo",
]
THREAD = "team_notifications_thread"


async def test_the_pipeline_stores_the_fetched_data_and_posts_its_resource_id(
    mfo: AsyncMFOClient,
    http: httpx.AsyncClient,
    api: httpx.Client,
    external: External,
    port: int,
) -> None:
    clients = FlowClients(mfo=mfo, http=http, settings=operator_settings(port))
    result, order = await run_seed(PIPELINE, {"input": {"dataID": "42"}}, clients)

    assert order == PIPELINE_TASKS
    assert result.status is RunStatus.SUCCEEDED, result.failed_tasks()
    assert statuses(result) == dict.fromkeys(PIPELINE_TASKS, TaskStatus.SUCCEEDED)
    # The request named api.external.com (Host, and SNI: the certificate is for that name only).
    assert external.hosts == [EXTERNAL]
    fetched = result.tasks["fetch_external_data"].outputs
    assert (fetched["status"], fetched["url"]) == (200, f"https://{EXTERNAL}/data/42")
    assert fetched["body"] == rows_of("42")

    resource_id = result.tasks["store_data_mfo"].outputs["resourceID"]
    response = api.get(f"/resources/{resource_id}")
    assert response.status_code == 200, response.text
    resource = response.json()
    assert (resource["id"], resource["type"]) == (resource_id, "processed_data")
    assert resource["content"] == rows_of("42")  # ruleset_v1 passes the body through
    assert [r["id"] for r in items(api, "/resources", type="processed_data")] == [resource_id]

    messages = items(api, f"/chat/threads/{THREAD}/messages")
    assert [(m["message_id"], m["thread_id"]) for m in messages] == [
        (result.tasks["notify_completion_mfo"].outputs["messageID"], THREAD)
    ]
    assert messages[0]["message"] == (
        f"Data ingestion pipeline for 42 completed. New resource ID: {resource_id}"
    )


async def test_the_pipeline_without_the_operators_settings_never_leaves_the_fetch(
    mfo: AsyncMFOClient,
    http: httpx.AsyncClient,
    api: httpx.Client,
    external: External,
    dns: dict[str, list[str]],
) -> None:
    # Were the name to resolve to where the fake API listens, the guard still refuses it.
    dns[EXTERNAL] = ["127.0.0.1"]
    result, _ = await run_seed(PIPELINE, {"input": {"dataID": "42"}}, FlowClients(mfo, http))

    assert result.status is RunStatus.FAILED
    assert statuses(result) == {
        "fetch_external_data": TaskStatus.FAILED,
        "transform_fetched_data": TaskStatus.SKIPPED,
        "store_data_mfo": TaskStatus.SKIPPED,
        "notify_completion_mfo": TaskStatus.SKIPPED,
    }
    assert result.tasks["fetch_external_data"].error == (
        f'refusing to fetch "https://{EXTERNAL}/data/42": host "{EXTERNAL}" resolves to '
        f'127.0.0.1, a loopback address; to allow it, add "{EXTERNAL}" (or "127.0.0.1") '
        "to allow_hosts"
    )
    assert external.hosts == []
    assert items(api, "/resources") == []
    assert items(api, f"/chat/threads/{THREAD}/messages") == []


async def test_the_pipeline_fails_cleanly_when_the_name_does_not_resolve(
    mfo: AsyncMFOClient,
    http: httpx.AsyncClient,
    api: httpx.Client,
    external: External,
    dns: dict[str, list[str]],
) -> None:
    dns[EXTERNAL] = []
    result, _ = await run_seed(PIPELINE, {"input": {"dataID": "42"}}, FlowClients(mfo, http))

    assert statuses(result)["fetch_external_data"] is TaskStatus.FAILED
    assert result.tasks["fetch_external_data"].error == (
        f'cannot fetch "https://{EXTERNAL}/data/42": host "{EXTERNAL}" does not resolve '
        "(Name or service not known)"
    )
    assert [r.status for r in result.tasks.values()][1:] == [TaskStatus.SKIPPED] * 3
    assert items(api, "/resources") == []


async def test_connect_to_alone_does_not_allow_a_loopback_target(
    mfo: AsyncMFOClient, http: httpx.AsyncClient, api: httpx.Client, external: External, port: int
) -> None:
    settings = operator_settings(port)
    del settings["http_get_task"]["allow_hosts"]
    clients = FlowClients(mfo=mfo, http=http, settings=settings)
    result, _ = await run_seed(PIPELINE, {"input": {"dataID": "42"}}, clients)

    assert statuses(result)["fetch_external_data"] is TaskStatus.FAILED
    assert result.tasks["fetch_external_data"].error == (
        f'refusing to fetch "https://{EXTERNAL}/data/42" through 127.0.0.1:{port} '
        '(its connect_to): 127.0.0.1 is a loopback address; to allow it, add "127.0.0.1" '
        "to allow_hosts"
    )
    assert external.hosts == []
    assert items(api, "/resources") == []


async def test_the_certificate_is_checked_against_the_urls_name(
    http: httpx.AsyncClient, external: External, port: int
) -> None:
    # connect_to may name its target; the certificate must still be for the URL's name.
    to = f"localhost:{port}"
    settings = {
        "http_get_task": {
            "allow_hosts": ["localhost"],
            "connect_to": {f"{EXTERNAL}:443": to, "other.example:443": to},
        }
    }
    info = TaskInfo(id="fetch", name="fetch", type="http_get_task", attempt=1)
    ctx = FlowContext({}, info, FlowClients(http=http, settings=settings))
    task = builtin_registry().get("http_get_task")

    outputs = await task({"url": f"https://{EXTERNAL}/data/7"})(ctx)
    assert outputs["body"] == rows_of("7")
    with pytest.raises(TaskError, match=r"certificate verify failed.*other\.example"):
        await task({"url": "https://other.example/data/7"})(ctx)
    assert external.hosts == [EXTERNAL]


# --- sample_flow.yaml -------------------------------------------------------------------------


async def test_the_sample_flow_notifies_the_admin_and_logs_it(
    mfo: AsyncMFOClient, api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mfo_client.flows")
    initial = {"eventName": "user_signup", "userID": "u42"}
    result, order = await run_seed("sample_flow.yaml", initial, FlowClients(mfo=mfo))

    assert order == ["send_notification_task", "log_event_task"]
    assert result.status is RunStatus.SUCCEEDED, result.failed_tasks()
    assert statuses(result) == dict.fromkeys(order, TaskStatus.SUCCEEDED)

    sent = result.tasks["send_notification_task"].outputs
    notifications = items(api, "/notifications", recipient="admin@example.com")
    assert [(n["id"], n["message"]) for n in notifications] == [
        (sent["notificationID"], "Event user_signup received for user u42.")
    ]
    response = api.get(f"/notifications/{sent['notificationID']}")
    assert response.status_code == 200, response.text
    assert response.json()["recipient"] == "admin@example.com"

    logged = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if getattr(r, "mfo", {}).get("task_id") == "log_event_task"
    ]
    assert logged == [(logging.INFO, "Notification sent for event user_signup, user u42.")]
