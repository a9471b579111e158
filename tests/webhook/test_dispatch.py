"""The dispatch hook: the flow runs an event asks for are stored with it and named in the 202,
and a dispatch may answer the sender itself. The dispatch here is a small plug-in of the kind a
caller writes (not a stand-in for project code), served over a real store: each test runs on
both backends (SQLite and Redis)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response

from mfo_client.config import SourceConfig
from mfo_client.delivery import Accepted, FlowJob, IncomingEvent, Lease, flow_kind
from mfo_client.webhook import Dispatch, build_source, create_webhook_app
from tests._servers import run_app
from tests._stores import StoreKit, peek

DATA = Path(__file__).parent.parent / "data"
PUSH = (DATA / "github" / "push.new_branch.json").read_bytes()
ISSUES = (DATA / "github" / "issues.opened.json").read_bytes()
PING = (DATA / "github" / "ping.json").read_bytes()
URL_VERIFICATION = (DATA / "slack" / "url_verification.json").read_bytes()
SECRET = "dispatch-tests-secret"
SLACK_SECRET = "dispatch-tests-slack-secret"


class ByEventType:
    """A caller's dispatch: runs per event type, and a synchronous answer for `issues`."""

    def __init__(self) -> None:
        self.planned: list[str] = []
        self.responded: list[tuple[str, Accepted]] = []

    def plan(self, item: IncomingEvent) -> Sequence[FlowJob]:
        kind = item.event["type"]
        self.planned.append(item.id)
        if kind == "explode":
            raise RuntimeError("a trigger that was not meant to raise")
        if kind == "push":
            return [
                FlowJob(id=f"run-{uuid.uuid4()}", trigger="build"),
                FlowJob(
                    id=f"run-{uuid.uuid4()}",
                    trigger="notify",
                    dedupe_key=item.event["payload"]["repository"]["full_name"],
                ),
            ]
        if kind in ("issues", "respond.fails"):
            return [FlowJob(id=f"run-{uuid.uuid4()}", trigger="triage")]
        return []

    async def respond(self, item: IncomingEvent, accepted: Accepted) -> Response | None:
        self.responded.append((item.id, accepted))
        if item.event["type"] == "respond.fails":
            raise RuntimeError("the answer could not be built")
        if item.event["type"] != "issues":
            return None
        (job,) = accepted.jobs
        return JSONResponse({"run_id": job.id, "outputs": {"label": "bug"}}, status_code=200)


def github(body: bytes, event: str, delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


@pytest.fixture(scope="module")
def store_kit(module_kit: StoreKit) -> StoreKit:
    return module_kit


@pytest.fixture(scope="module")
def dispatch(store_kit: StoreKit) -> ByEventType:
    """One per backend, as the listener it is plugged into."""
    return ByEventType()


@pytest.fixture(scope="module")
def listener(store_kit: StoreKit, dispatch: ByEventType) -> Iterator[str]:
    store = store_kit.store(clock=time.time)
    sources = [
        build_source(SourceConfig(name="github", path="/hooks/github", secret=SECRET)),
        build_source(
            SourceConfig(
                name="slack",
                path="/hooks/slack",
                scheme="slack",
                secret=SLACK_SECRET,
                handshake="slack",
            )
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with store:
            yield

    plugged: Dispatch = dispatch  # the caller's class satisfies the protocol as written
    with run_app(create_webhook_app(sources, store, lifespan=lifespan, dispatch=plugged)) as url:
        yield url


async def flow_jobs(kit: StoreKit, trigger: str) -> list[Lease]:
    """The flow-run jobs of `trigger` as a worker would lease them (given back afterwards)."""
    return await peek(kit, kinds=[flow_kind(trigger)])


async def test_runs_are_stored_with_the_event_and_named_in_the_202(
    http: httpx.AsyncClient, listener: str, store_kit: StoreKit
) -> None:
    response = await http.post(
        f"{listener}/hooks/github", content=PUSH, headers=github(PUSH, "push")
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"id", "duplicate", "runs"}
    assert body["duplicate"] is False
    build, notify = body["runs"]
    assert (build["trigger"], build["duplicate"]) == ("build", False)
    assert (notify["trigger"], notify["duplicate"]) == ("notify", False)
    (job,) = [j for j in await flow_jobs(store_kit, "build") if j.id == build["run_id"]]
    assert job.event_id == body["id"]
    assert job.kind == flow_kind("build")
    assert job.event["type"] == "push"
    assert notify["run_id"] in {j.id for j in await flow_jobs(store_kit, "notify")}


async def test_a_dedupe_key_already_taken_names_the_earlier_run(
    http: httpx.AsyncClient, listener: str, store_kit: StoreKit
) -> None:
    # Two pushes to a repository no other test uses: "notify" runs once per repository.
    repository = {"full_name": f"octo-org/{uuid.uuid4().hex}"}
    body = json.dumps({"type": "push", "payload": {"repository": repository}}).encode()

    first = await http.post(f"{listener}/hooks/github", content=body, headers=github(body, "push"))
    second = await http.post(f"{listener}/hooks/github", content=body, headers=github(body, "push"))

    assert (first.status_code, second.status_code) == (202, 202), second.text
    assert first.json()["id"] != second.json()["id"]  # two deliveries: two events
    build_1, notify_1 = first.json()["runs"]
    build_2, notify_2 = second.json()["runs"]
    assert (build_1["duplicate"], notify_1["duplicate"], build_2["duplicate"]) == (
        False,
        False,
        False,
    )
    assert build_2["run_id"] != build_1["run_id"]
    assert notify_2 == {"trigger": "notify", "run_id": notify_1["run_id"], "duplicate": True}
    notify_ids = [j.id for j in await flow_jobs(store_kit, "notify")]
    assert notify_ids.count(notify_1["run_id"]) == 1


async def test_a_repeat_delivery_starts_nothing_and_gets_no_answer_of_its_own(
    http: httpx.AsyncClient, listener: str, store_kit: StoreKit, dispatch: ByEventType
) -> None:
    delivery = str(uuid.uuid4())
    first = await http.post(
        f"{listener}/hooks/github", content=PUSH, headers=github(PUSH, "push", delivery)
    )
    answered = len(dispatch.responded)

    again = await http.post(
        f"{listener}/hooks/github", content=PUSH, headers=github(PUSH, "push", delivery)
    )

    assert again.status_code == 202, again.text
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    assert len(dispatch.responded) == answered
    builds = [j.id for j in await flow_jobs(store_kit, "build") if j.event_id == delivery]
    assert builds == [first.json()["runs"][0]["run_id"]]


async def test_an_event_asking_for_no_runs_gets_the_usual_202(
    http: httpx.AsyncClient, listener: str, dispatch: ByEventType
) -> None:
    delivery = str(uuid.uuid4())

    response = await http.post(
        f"{listener}/hooks/github", content=PING, headers=github(PING, "ping", delivery)
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"id": delivery, "duplicate": False}
    assert delivery in dispatch.planned


async def test_the_dispatch_may_answer_the_sender_after_the_commit(
    http: httpx.AsyncClient, listener: str, store_kit: StoreKit, dispatch: ByEventType
) -> None:
    delivery = str(uuid.uuid4())

    response = await http.post(
        f"{listener}/hooks/github", content=ISSUES, headers=github(ISSUES, "issues", delivery)
    )

    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]
    assert response.json()["outputs"] == {"label": "bug"}
    (job,) = [j for j in await flow_jobs(store_kit, "triage") if j.id == run_id]
    assert job.event_id == delivery
    ((_, accepted),) = [r for r in dispatch.responded if r[0] == delivery]
    assert (accepted.id, accepted.duplicate) == (delivery, False)


async def test_a_failing_answer_still_acknowledges_the_stored_event(
    http: httpx.AsyncClient, listener: str, store_kit: StoreKit
) -> None:
    body = json.dumps({"type": "respond.fails", "payload": {}}).encode()
    delivery = str(uuid.uuid4())

    response = await http.post(
        f"{listener}/hooks/github", content=body, headers=github(body, "respond.fails", delivery)
    )

    assert response.status_code == 202, response.text
    (run,) = response.json()["runs"]
    assert run["trigger"] == "triage"
    assert run["run_id"] in {j.id for j in await flow_jobs(store_kit, "triage")}


async def test_a_plan_that_raises_refuses_the_event_and_stores_nothing(
    http: httpx.AsyncClient, listener: str, store_kit: StoreKit
) -> None:
    body = json.dumps({"type": "explode", "payload": {}}).encode()
    delivery = str(uuid.uuid4())

    response = await http.post(
        f"{listener}/hooks/github", content=body, headers=github(body, "explode", delivery)
    )

    assert response.status_code == 500, response.text
    assert response.json()["error"]["code"] == "dispatch_failed"
    assert "nothing was stored" in response.json()["error"]["message"]
    assert delivery not in {lease.id for lease in await peek(store_kit)}


async def test_refused_requests_and_handshakes_are_never_planned(
    http: httpx.AsyncClient, listener: str, dispatch: ByEventType
) -> None:
    forged = github(PUSH, "push")
    forged["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    planned = len(dispatch.planned)
    now = int(time.time())
    slack_digest = hmac.new(
        SLACK_SECRET.encode(), f"v0:{now}:".encode() + URL_VERIFICATION, hashlib.sha256
    ).hexdigest()
    slack_headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(now),
        "X-Slack-Signature": f"v0={slack_digest}",
    }

    refused = await http.post(f"{listener}/hooks/github", content=PUSH, headers=forged)
    handshake = await http.post(
        f"{listener}/hooks/slack", content=URL_VERIFICATION, headers=slack_headers
    )

    assert refused.status_code == 401, refused.text
    assert handshake.status_code == 200, handshake.text
    assert "challenge" in handshake.json()
    assert len(dispatch.planned) == planned
