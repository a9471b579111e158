"""`/api/notifications`: sending records the notification so tests can see what went out."""

from __future__ import annotations

import httpx

from tests.devserver.conftest import error_code


def test_notification_round_trip(api: httpx.Client) -> None:
    created = api.post("/api/notifications", json={"recipient": "ops", "message": "disk full"})
    assert created.status_code == 201
    notification = created.json()
    assert notification["channel"] == "default"
    assert notification["metadata"] == {}
    assert api.get(f"/api/notifications/{notification['id']}").json() == notification


def test_list_filters_by_recipient(api: httpx.Client) -> None:
    for recipient in ("ops", "dev", "ops"):
        api.post(
            "/api/notifications",
            json={"recipient": recipient, "message": "hi", "channel": "slack"},
        )
    to_ops = api.get("/api/notifications", params={"recipient": "ops"}).json()["items"]
    assert [item["recipient"] for item in to_ops] == ["ops", "ops"]
    assert {item["channel"] for item in to_ops} == {"slack"}


def test_unknown_notification_is_404(api: httpx.Client) -> None:
    response = api.get("/api/notifications/nope")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_recipient_and_message_are_required(api: httpx.Client) -> None:
    response = api.post("/api/notifications", json={})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "body.recipient" in message and "body.message" in message
