"""`/api/jobs`: queued -> running -> succeeded or failed, cancel, and the 409 after the end."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.devserver.conftest import error_code

POLL_TIMEOUT = 5.0


def _statuses_until_final(api: httpx.Client, job_id: str) -> tuple[list[str], dict[str, Any]]:
    """Every distinct status seen, in order, and the final job."""
    seen: list[str] = []
    deadline = time.monotonic() + POLL_TIMEOUT
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/api/jobs/{job_id}").json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return seen, job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish; saw {seen}")


def test_job_runs_to_success_with_echo_output(api: httpx.Client) -> None:
    created = api.post("/api/jobs", json={"type": "resize", "input": {"w": 10}})
    assert created.status_code == 201
    job = created.json()
    assert job["status"] == "queued"
    assert job["output"] is None and job["error"] is None

    seen, final = _statuses_until_final(api, job["id"])
    assert seen[-2:] == ["running", "succeeded"]
    assert final["output"] == {"echo": {"w": 10}, "type": "resize"}
    assert final["error"] is None
    assert final["updated_at"] > final["created_at"]


def test_job_fails_when_input_asks_for_it(api: httpx.Client) -> None:
    job = api.post("/api/jobs", json={"type": "t", "input": {"fail": True}}).json()
    seen, final = _statuses_until_final(api, job["id"])
    assert seen[-1] == "failed"
    assert final["error"] == "job failed as requested by input.fail"
    assert final["output"] is None


def test_only_a_true_fail_flag_fails(api: httpx.Client) -> None:
    job = api.post("/api/jobs", json={"type": "t", "input": {"fail": "yes"}}).json()
    assert _statuses_until_final(api, job["id"])[1]["status"] == "succeeded"


def test_cancelled_job_stays_cancelled(api: httpx.Client) -> None:
    job = api.post("/api/jobs", json={"type": "t"}).json()
    cancelled = api.post(f"/api/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    time.sleep(0.5)  # longer than the job would have taken
    assert api.get(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"

    again = api.post(f"/api/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert error_code(again) == "conflict"


def test_finished_job_cannot_be_cancelled(api: httpx.Client) -> None:
    job = api.post("/api/jobs", json={"type": "t"}).json()
    _statuses_until_final(api, job["id"])
    response = api.post(f"/api/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert "already succeeded" in response.json()["error"]["message"]


def test_unknown_job_is_404(api: httpx.Client) -> None:
    assert api.get("/api/jobs/nope").status_code == 404
    assert api.post("/api/jobs/nope/cancel").status_code == 404
