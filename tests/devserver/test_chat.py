"""`/api/chat/threads/{thread_id}/messages`: post to a thread, read it oldest first."""

from __future__ import annotations

import httpx

from tests.devserver.conftest import error_code


def test_messages_are_kept_per_thread_oldest_first(api: httpx.Client) -> None:
    posted = []
    for text in ("one", "two", "three"):
        response = api.post(
            "/api/chat/threads/t-1/messages", json={"message": text, "metadata": {"n": text}}
        )
        assert response.status_code == 201
        posted.append(response.json())
    api.post("/api/chat/threads/t-2/messages", json={"message": "elsewhere"})

    assert {message["thread_id"] for message in posted} == {"t-1"}
    assert len({message["message_id"] for message in posted}) == 3
    page = api.get("/api/chat/threads/t-1/messages").json()
    assert page == {"items": posted, "next_cursor": None}


def test_unknown_thread_is_empty(api: httpx.Client) -> None:
    assert api.get("/api/chat/threads/none/messages").json() == {"items": [], "next_cursor": None}


def test_empty_message_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/chat/threads/t/messages", json={"message": ""})
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert "body.message" in response.json()["error"]["message"]


def test_overlong_thread_id_is_refused(api: httpx.Client) -> None:
    response = api.post(f"/api/chat/threads/{'x' * 257}/messages", json={"message": "hi"})
    assert response.status_code == 422
    assert "path.thread_id" in response.json()["error"]["message"]
