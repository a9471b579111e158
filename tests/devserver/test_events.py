"""`/api/events`: receipts, ids kept, dedupe by id, read back, list by type."""

from __future__ import annotations

import httpx

from tests.devserver.conftest import error_code


def test_event_is_accepted_and_kept_under_its_own_id(api: httpx.Client) -> None:
    event = {
        "id": "delivery-1",
        "type": "user_created",
        "payload": {"id": "user123", "email": "test@example.com"},
        "timestamp": "2024-05-01T12:00:00+02:00",
        "source": "github",
        "metadata": {"attempt": 1},
    }
    receipt = api.post("/api/events", json=event)
    assert receipt.status_code == 202
    assert receipt.json()["id"] == "delivery-1"
    assert receipt.json()["status"] == "accepted"

    stored = api.get("/api/events/delivery-1")
    assert stored.status_code == 200
    body = stored.json()
    assert {key: body[key] for key in event if key != "timestamp"} == {
        key: value for key, value in event.items() if key != "timestamp"
    }
    assert body["timestamp"] == "2024-05-01T12:00:00+02:00"
    assert body["received_at"] == receipt.json()["received_at"]


def test_the_quickstart_event_gets_an_id_and_a_timestamp(api: httpx.Client) -> None:
    receipt = api.post(
        "/api/events",
        json={"type": "user_created", "payload": {"id": "user123", "email": "test@example.com"}},
    )
    assert receipt.status_code == 202
    stored = api.get(f"/api/events/{receipt.json()['id']}").json()
    assert stored["timestamp"] is not None
    assert stored["source"] is None and stored["metadata"] == {}


def test_a_known_event_id_is_stored_once_and_gets_the_first_receipt(api: httpx.Client) -> None:
    first = api.post("/api/events", json={"id": "dup", "type": "t", "payload": 1})
    again = api.post("/api/events", json={"id": "dup", "type": "t", "payload": 2})
    assert again.status_code == 202
    assert again.json() == first.json()
    assert api.get("/api/events/dup").json()["payload"] == 1
    assert [item["id"] for item in api.get("/api/events").json()["items"]] == ["dup"]


def test_list_filters_by_type_in_insertion_order(api: httpx.Client) -> None:
    for index, kind in enumerate(["a", "b", "a", "c", "a"]):
        api.post("/api/events", json={"id": f"e{index}", "type": kind, "payload": index})
    page = api.get("/api/events", params={"type": "a"}).json()
    assert [item["id"] for item in page["items"]] == ["e0", "e2", "e4"]
    assert page["next_cursor"] is None
    assert len(api.get("/api/events").json()["items"]) == 5


def test_unknown_event_is_404(api: httpx.Client) -> None:
    response = api.get("/api/events/nope")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_event_validation_names_the_fields(api: httpx.Client) -> None:
    response = api.post("/api/events", json={"type": "", "extra": 1})
    assert response.status_code == 422
    assert error_code(response) == "validation_error"
    message = response.json()["error"]["message"]
    for field in ("body.type", "body.payload", "body.extra"):
        assert field in message


def test_event_timestamp_must_be_rfc3339_with_an_offset(api: httpx.Client) -> None:
    for timestamp in ("2024-05-01", "2024-05-01T12:00:00", "1714564800", 1714564800):
        response = api.post(
            "/api/events", json={"type": "t", "payload": None, "timestamp": timestamp}
        )
        assert response.status_code == 422, timestamp
        assert "body.timestamp" in response.json()["error"]["message"]
