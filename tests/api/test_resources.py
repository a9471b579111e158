"""Every resource client against the running reference server, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mfo_client import AsyncMFOClient, Event, JobStatus, JobWaitTimeoutError, MFOClient
from mfo_client.api import CircuitBreakerRegistry
from tests.api.conftest import TOKEN, Server


@pytest.fixture
def mfo(server: Server, breakers: CircuitBreakerRegistry) -> Iterator[MFOClient]:
    with MFOClient(server.api, auth=TOKEN, breakers=breakers) as client:
        yield client


def test_send_event_keeps_the_given_id_and_the_server_stores_it_once(
    mfo: MFOClient, server: Server
) -> None:
    event = Event(
        id="delivery-72d3162e",
        type="user_created",
        payload={"id": "user123", "email": "test@example.com"},
        source="seed",
        metadata={"k": "v"},
    )
    receipt = mfo.events.send_event(event)
    assert receipt.id == "delivery-72d3162e"
    again = mfo.events.send_event(event)  # same id: acknowledged, not stored twice
    assert again.id == receipt.id
    stored = mfo.events.get("delivery-72d3162e")
    assert stored.type == "user_created"
    assert stored.payload == {"id": "user123", "email": "test@example.com"}
    assert stored.source == "seed"
    assert stored.metadata == {"k": "v"}
    assert [e.id for e in mfo.events.list(type="user_created").items] == ["delivery-72d3162e"]


def test_send_event_accepts_a_mapping_and_generates_an_id(mfo: MFOClient) -> None:
    receipt = mfo.events.send_event({"type": "user_created", "payload": {"id": "u1"}})
    assert len(receipt.id) == 36
    assert mfo.events.get(receipt.id).payload == {"id": "u1"}


def test_chat_messages_round_trip_in_order(mfo: MFOClient) -> None:
    thread = "team notifications #ops?"  # needs escaping in the path
    first = mfo.chat.send_message(thread, "pipeline started", {"run": 1})
    second = mfo.chat.send_message(thread, "pipeline finished")
    assert first.message_id != second.message_id
    assert first.thread_id == thread
    page = mfo.chat.list_messages(thread)
    assert [m.message for m in page.items] == ["pipeline started", "pipeline finished"]
    assert page.items[0].metadata == {"run": 1}


def test_resources_create_get_and_page_through_every_item_once(mfo: MFOClient) -> None:
    created = [mfo.resources.create("processed_data", {"n": i}) for i in range(7)]
    mfo.resources.create("other", "text content")
    assert mfo.resources.get(created[3].id).content == {"n": 3}
    seen: list[str] = []
    cursor = None
    while True:
        page = mfo.resources.list(type="processed_data", limit=3, cursor=cursor)
        seen += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [r.id for r in created]


def test_jobs_run_to_success_and_wait_returns_the_output(mfo: MFOClient) -> None:
    job = mfo.jobs.create("data-processing-job", {"data_url": "s3://bucket/data.csv"}, {"m": 1})
    assert job.status is JobStatus.QUEUED
    done = mfo.jobs.wait(job.id, timeout=10)
    assert done.status is JobStatus.SUCCEEDED
    assert done.output == {
        "echo": {"data_url": "s3://bucket/data.csv"},
        "type": "data-processing-job",
    }


def test_failed_and_cancelled_jobs(mfo: MFOClient) -> None:
    failed = mfo.jobs.wait(mfo.jobs.create("x", {"fail": True}).id, timeout=10)
    assert failed.status is JobStatus.FAILED
    assert failed.error and "fail" in failed.error
    job = mfo.jobs.create("long")
    cancelled = mfo.jobs.cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert mfo.jobs.wait(job.id, timeout=5).status is JobStatus.CANCELLED


def test_wait_gives_up_with_the_last_state() -> None:
    from tests.api.conftest import start

    with start(job_duration=30) as url, MFOClient(f"{url}/api", auth=TOKEN) as mfo:
        job = mfo.jobs.create("slow")
        with pytest.raises(JobWaitTimeoutError) as info:
            mfo.jobs.wait(job.id, timeout=0.3, poll_interval=0.05)
        assert info.value.job.id == job.id
        assert info.value.job.status in (JobStatus.QUEUED, JobStatus.RUNNING)


def test_notifications_are_created_and_listed(mfo: MFOClient) -> None:
    sent = mfo.notifications.create("admin@example.com", "Event user_created received", "email")
    assert sent.channel == "email"
    mfo.notifications.create("someone@example.com", "other")
    listed = mfo.notifications.list(recipient="admin@example.com").items
    assert [n.id for n in listed] == [sent.id]
    assert mfo.notifications.get(sent.id).message == "Event user_created received"


async def test_async_client_does_the_same(server: Server, breakers: CircuitBreakerRegistry) -> None:
    async with AsyncMFOClient(server.api, auth=TOKEN, breakers=breakers) as mfo:
        receipts = await asyncio.gather(
            *(mfo.events.send_event(Event(type="tick", payload={"n": i})) for i in range(20))
        )
        assert len({r.id for r in receipts}) == 20
        assert len((await mfo.events.list(type="tick", limit=100)).items) == 20
        resource = await mfo.resources.create("doc", "hello")
        assert (await mfo.resources.get(resource.id)).content == "hello"
        message = await mfo.chat.send_message("t1", f"resource {resource.id}")
        assert (await mfo.chat.list_messages("t1")).items[0].message_id == message.message_id
        job = await mfo.jobs.create("async-job", {"a": 1})
        assert (await mfo.jobs.wait(job.id, timeout=10)).status is JobStatus.SUCCEEDED
        note = await mfo.notifications.create("ops", "done")
        assert (await mfo.notifications.get(note.id)).recipient == "ops"
