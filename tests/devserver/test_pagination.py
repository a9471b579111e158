"""List endpoints: limit bounds, opaque cursors, and every item exactly once, in order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.devserver.conftest import error_code


def _walk(api: httpx.Client, path: str, **params: Any) -> tuple[list[str], int]:
    """Follow next_cursor to the end; the ids seen and the number of pages."""
    ids: list[str] = []
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        ids.extend(item.get("id") or item["message_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages


@pytest.mark.parametrize("limit", [1, 3, 7, 10, 11, 1000])
def test_cursor_walk_returns_every_item_exactly_once(api: httpx.Client, limit: int) -> None:
    created = [api.post("/api/resources", json={"type": "r"}).json()["id"] for _ in range(10)]
    ids, pages = _walk(api, "/api/resources", limit=limit)
    assert ids == created
    assert pages == max(1, -(-10 // limit))


def test_items_added_during_a_walk_are_seen_once(api: httpx.Client) -> None:
    first = [
        api.post("/api/notifications", json={"recipient": "r", "message": "m"}) for _ in range(4)
    ]
    page = api.get("/api/notifications", params={"limit": 3}).json()
    later = api.post("/api/notifications", json={"recipient": "r", "message": "late"}).json()
    rest, _ = _walk(api, "/api/notifications", limit=3, cursor=page["next_cursor"])
    seen = [item["id"] for item in page["items"]] + rest
    assert seen == [response.json()["id"] for response in first] + [later["id"]]


def test_chat_threads_and_filters_paginate_too(api: httpx.Client) -> None:
    for index in range(5):
        api.post("/api/chat/threads/t/messages", json={"message": f"m{index}"})
        api.post("/api/events", json={"id": f"a{index}", "type": "a", "payload": index})
        api.post("/api/events", json={"id": f"b{index}", "type": "b", "payload": index})
    assert len(_walk(api, "/api/chat/threads/t/messages", limit=2)[0]) == 5
    assert _walk(api, "/api/events", type="b", limit=2)[0] == [f"b{i}" for i in range(5)]


def test_default_limit_is_100(api: httpx.Client) -> None:
    for index in range(101):
        api.post("/api/events", json={"id": str(index), "type": "t", "payload": None})
    page = api.get("/api/events").json()
    assert len(page["items"]) == 100
    assert page["next_cursor"] is not None


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1.5", ""])
def test_limit_out_of_range_is_422(api: httpx.Client, limit: str) -> None:
    response = api.get("/api/events", params={"limit": limit})
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    assert "query.limit" in response.json()["error"]["message"]


@pytest.mark.parametrize("cursor", ["garbage", "c2VxOmFiYw", "!!!", ""])
def test_cursor_not_issued_by_the_server_is_400(api: httpx.Client, cursor: str) -> None:
    response = api.get("/api/events", params={"cursor": cursor})
    assert response.status_code == 400
    assert error_code(response) == "bad_request"


def test_unknown_query_parameter_is_422(api: httpx.Client) -> None:
    response = api.get("/api/events", params={"limt": "5"})
    assert response.status_code == 422
    assert "'limt'" in response.json()["error"]["message"]


def test_repeated_limit_is_422(api: httpx.Client) -> None:
    response = api.get("/api/events", params=[("limit", "1"), ("limit", "2")])
    assert response.status_code == 422
