"""`/api/resources`: create, read, list by type."""

from __future__ import annotations

import httpx

from tests.devserver.conftest import error_code


def test_resource_round_trip(api: httpx.Client) -> None:
    created = api.post(
        "/api/resources",
        json={"type": "dataset", "content": {"rows": [1, 2]}, "metadata": {"owner": "me"}},
    )
    assert created.status_code == 201
    resource = created.json()
    assert resource["type"] == "dataset"
    assert resource["content"] == {"rows": [1, 2]}
    assert resource["metadata"] == {"owner": "me"}
    assert api.get(f"/api/resources/{resource['id']}").json() == resource


def test_content_defaults_to_null(api: httpx.Client) -> None:
    assert api.post("/api/resources", json={"type": "x"}).json()["content"] is None


def test_list_filters_by_type(api: httpx.Client) -> None:
    ids = [api.post("/api/resources", json={"type": kind}).json()["id"] for kind in "abab"]
    listed = api.get("/api/resources", params={"type": "b"}).json()["items"]
    assert [item["id"] for item in listed] == [ids[1], ids[3]]


def test_unknown_resource_is_404(api: httpx.Client) -> None:
    response = api.get("/api/resources/nope")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_unknown_fields_are_refused(api: httpx.Client) -> None:
    response = api.post("/api/resources", json={"type": "x", "kontent": 1})
    assert response.status_code == 422
    assert "body.kontent" in response.json()["error"]["message"]
