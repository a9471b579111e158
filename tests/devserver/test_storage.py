"""`--db FILE` keeps data (and login tokens) across restarts; `:memory:` does not."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests._servers import run_devserver
from tests.devserver.conftest import PASSWORD, TOKEN, USER, settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_database_file_survives_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "mfo.db")
    with run_devserver(settings(db=db)) as url:
        resource = httpx.post(f"{url}/api/resources", json={"type": "r"}, headers=AUTH).json()
        login = httpx.post(f"{url}/auth/login", json={"username": USER, "password": PASSWORD})
    with run_devserver(settings(db=db)) as url:
        again = httpx.get(f"{url}/api/resources/{resource['id']}", headers=AUTH)
        user_auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        still_valid = httpx.get(f"{url}/api/events", headers=user_auth)
    assert again.json() == resource
    assert still_valid.status_code == 200


def test_memory_starts_empty_each_time() -> None:
    for _ in range(2):
        with run_devserver(settings()) as url:
            assert httpx.get(f"{url}/api/resources", headers=AUTH).json()["items"] == []
            httpx.post(f"{url}/api/resources", json={"type": "r"}, headers=AUTH)
