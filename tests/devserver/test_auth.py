"""Bearer auth on /api, login and refresh on /auth, and forced expiry via /_admin."""

from __future__ import annotations

import time

import httpx
import pytest

from tests._servers import run_devserver
from tests.devserver.conftest import PASSWORD, TOKEN, USER, error_code, settings


def _login(client: httpx.Client) -> dict[str, object]:
    response = client.post("/auth/login", json={"username": USER, "password": PASSWORD})
    assert response.status_code == 200, response.text
    tokens: dict[str, object] = response.json()
    return tokens


def _bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": TOKEN},
    ],
    ids=["missing", "wrong", "other-scheme", "empty", "no-scheme"],
)
def test_api_refuses_requests_without_a_valid_token(
    anon: httpx.Client, headers: dict[str, str]
) -> None:
    response = anon.get("/api/events", headers=headers)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_static_token_is_accepted(anon: httpx.Client) -> None:
    assert anon.get("/api/events", headers=_bearer(TOKEN)).status_code == 200
    assert anon.get("/api/events", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_health_and_admin_need_no_token(anon: httpx.Client) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}
    assert anon.get("/_admin/stats").status_code == 200


def test_login_issues_tokens_that_work(anon: httpx.Client) -> None:
    tokens = _login(anon)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["access_token"] and tokens["refresh_token"]
    assert anon.get("/api/events", headers=_bearer(tokens["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [{"username": USER, "password": "nope"}, {"username": "bob", "password": PASSWORD}],
)
def test_login_with_wrong_credentials_is_401(
    anon: httpx.Client, credentials: dict[str, str]
) -> None:
    response = anon.post("/auth/login", json=credentials)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_login_is_disabled_without_configured_credentials() -> None:
    with run_devserver(settings(username=None, password=None)) as url:
        response = httpx.post(f"{url}/auth/login", json={"username": "a", "password": "b"})
    assert response.status_code == 401
    assert "disabled" in response.json()["error"]["message"]


def test_login_body_is_validated(anon: httpx.Client) -> None:
    response = anon.post("/auth/login", json={"username": USER})
    assert response.status_code == 422
    assert "body.password" in response.json()["error"]["message"]


def test_access_tokens_expire_after_token_ttl_and_refresh_renews_them() -> None:
    with run_devserver(settings(token_ttl=0.5)) as url, httpx.Client(base_url=url) as client:
        tokens = _login(client)
        assert tokens["expires_in"] == 1
        assert client.get("/api/events", headers=_bearer(tokens["access_token"])).is_success
        time.sleep(0.6)
        expired = client.get("/api/events", headers=_bearer(tokens["access_token"]))
        assert expired.status_code == 401
        assert "expired" in expired.json()["error"]["message"]

        renewed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert renewed.status_code == 200
        fresh = renewed.json()
        assert fresh["access_token"] != tokens["access_token"]
        assert fresh["refresh_token"] != tokens["refresh_token"]
        assert client.get("/api/events", headers=_bearer(fresh["access_token"])).is_success


def test_refresh_tokens_work_once(anon: httpx.Client) -> None:
    tokens = _login(anon)
    first = anon.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    again = anon.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    assert again.status_code == 401
    assert error_code(again) == "unauthorized"


def test_unknown_refresh_token_is_401(anon: httpx.Client) -> None:
    response = anon.post("/auth/refresh", json={"refresh_token": "made-up"})
    assert response.status_code == 401


def test_admin_can_expire_every_login_token_at_once(anon: httpx.Client) -> None:
    first, second = _login(anon), _login(anon)
    expired = anon.post("/_admin/tokens/expire")
    assert expired.status_code == 200
    assert expired.json() == {"expired": 2}
    for tokens in (first, second):
        assert anon.get("/api/events", headers=_bearer(tokens["access_token"])).status_code == 401
    # The static token is not a login token, and refreshing still works.
    assert anon.get("/api/events", headers=_bearer(TOKEN)).status_code == 200
    renewed = anon.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert anon.get("/api/events", headers=_bearer(renewed.json()["access_token"])).is_success
