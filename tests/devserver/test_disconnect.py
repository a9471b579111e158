"""A request cut off mid-body is not processed, so its Idempotency-Key stays free."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import httpx

from mfo_client.devserver import DevServerSettings
from tests._servers import run_devserver


def test_a_body_cut_off_by_a_dying_client_leaves_the_key_unused() -> None:
    body = json.dumps({"id": "evt-cut", "type": "order_paid", "payload": {"n": 1}}).encode()
    with run_devserver(DevServerSettings(port=0)) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port)) as sock:
            head = (
                "POST /api/events HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\n"
                "Authorization: Bearer dev-token\r\n"
                "Content-Type: application/json\r\n"
                "Idempotency-Key: evt-cut\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body[:10])  # then the process "dies"
        time.sleep(0.3)
        headers = {"Authorization": "Bearer dev-token", "Idempotency-Key": "evt-cut"}
        resent = httpx.post(
            f"{url}/api/events",
            content=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert resent.status_code == 202, resent.text
        assert resent.headers.get("idempotent-replayed") is None
        stats = httpx.get(f"{url}/_admin/stats").json()["requests"]
    assert stats["POST /api/events"] == {"202": 1}
