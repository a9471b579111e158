"""`/_admin/stats`: counts per route template (never raw paths) and status."""

from __future__ import annotations

import httpx


def test_counts_are_keyed_by_route_template_and_status(
    api: httpx.Client, anon: httpx.Client
) -> None:
    job_ids = [api.post("/api/jobs", json={"type": "t"}).json()["id"] for _ in range(2)]
    for job_id in [*job_ids, "missing"]:
        api.get(f"/api/jobs/{job_id}")
    anon.get("/api/events")
    anon.post("/_admin/faults", json={"status": 503, "count": 1, "routes": ["POST /api/jobs"]})
    api.post("/api/jobs", json={"type": "t"})

    requests = anon.get("/_admin/stats").json()["requests"]
    assert requests["POST /api/jobs"] == {"201": 2, "503": 1}
    assert requests["GET /api/jobs/{id}"] == {"200": 2, "404": 1}
    assert requests["GET /api/events"] == {"401": 1}
    assert not any(key.startswith(("GET /_admin", "POST /_admin")) for key in requests)
    assert not any(job_id in key for key in requests for job_id in job_ids)


def test_unmatched_paths_and_wrong_methods(api: httpx.Client, anon: httpx.Client) -> None:
    api.get("/api/nothing/here")
    api.delete("/api/events")
    requests = anon.get("/_admin/stats").json()["requests"]
    assert requests["GET <unmatched>"] == {"404": 1}
    assert requests["DELETE /api/events"] == {"405": 1}


def test_reset(api: httpx.Client, anon: httpx.Client) -> None:
    api.get("/api/events")
    assert anon.delete("/_admin/stats").json() == {"requests": {}}
    assert anon.get("/_admin/stats").json() == {"requests": {}}
