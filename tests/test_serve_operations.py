"""Operating `mfo serve`: metrics, readiness, a metrics port of its own, root path, SIGTERM; each
on both store backends (SQLite and Redis)."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mfo_client.config import Config
from mfo_client.devserver import DevServerSettings
from tests._servers import free_port, run_devserver, run_service, wait_http
from tests._stores import StoreKit

SECRET = "ops-secret"


def signed(body: bytes, delivery: str) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Delivery": delivery,
    }


@pytest.fixture
def mfo_url() -> Iterator[str]:
    with run_devserver(DevServerSettings(port=0)) as url:
        yield url


def config(kit: StoreKit, mfo_url: str, **extra: object) -> Config:
    return Config.from_mapping(
        {
            "client": {"base_url": f"{mfo_url}/api", "auth_token": "dev-token"},
            "webhook_listener": {"port": 0, "secret_key": SECRET},
            "store": kit.config(),
            **extra,
        },
        env={},
    )


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or (
            line.startswith(name + "{") and line.split(" ")[0] == name
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


def test_metrics_count_requests_failures_and_the_outbox(kit: StoreKit, mfo_url: str) -> None:
    body = json.dumps({"type": "user_created", "payload": {"id": "u1"}}).encode()
    with (
        run_service(config(kit, mfo_url)) as (url, _service),
        httpx.Client(base_url=url) as http,
    ):
        assert http.post("/webhook", content=body, headers=signed(body, "d-1")).status_code == 202
        bad = {**signed(body, "d-2"), "X-Hub-Signature-256": "sha256=" + "0" * 64}
        assert http.post("/webhook", content=body, headers=bad).status_code == 401
        deadline = time.monotonic() + 10
        while True:
            text = http.get("/metrics").text
            if (
                metric(text, 'mfo_outbox_events{state="delivered"}') == 1
                or time.monotonic() > deadline
            ):
                break
            time.sleep(0.05)
        ready = http.get("/readyz").json()
    assert metric(text, 'mfo_webhook_requests_total{source="default",status="202"}') == 1
    assert metric(text, 'mfo_webhook_requests_total{source="default",status="401"}') == 1
    assert (
        metric(text, 'mfo_webhook_verification_failures_total{reason="mismatch",source="default"}')
        == 1
    )
    assert metric(text, 'mfo_outbox_events{state="delivered"}') == 1
    assert metric(text, 'mfo_delivery_attempts_total{outcome="delivered"}') == 1
    assert metric(text, "mfo_delivery_duration_seconds_count") == 1
    assert metric(text, f'mfo_circuit_breaker_state{{server="{mfo_url}/api"}}') == 0
    assert ready == {
        "status": "ready",
        "mfo_server": {"url": f"{mfo_url}/api", "breaker": "closed"},
    }


def test_metrics_port_root_path_and_sigterm_in_a_real_process(
    tmp_path: Path, kit: StoreKit, mfo_url: str
) -> None:
    port, metrics_port = free_port(), free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"""
client: {{base_url: "{mfo_url}/api", auth_token: dev-token}}
webhook_listener: {{port: {port}, secret_key: {SECRET}, root_path: /mfo}}
metrics: {{port: {metrics_port}}}
store: {json.dumps(kit.config())}
logging: {{level: warning}}
""",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfo_client", "serve", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        body = b'{"type": "user_created", "payload": {}}'
        response = httpx.post(
            # The proxy strips its prefix; the app is told of it through root_path.
            f"http://127.0.0.1:{port}/webhook",
            content=body,
            headers=signed(body, "d-9"),
        )
        assert response.status_code == 202
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200
        assert 'mfo_webhook_requests_total{source="default",status="202"} 1.0' in scraped.text
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output.decode()


def test_serve_refuses_to_forward_without_credentials(kit: StoreKit) -> None:
    from mfo_client.service import Service, ServiceConfigError

    cfg = Config.from_mapping(
        {
            "client": {"auth_token": "${EMPTY}"},
            "webhook_listener": {"secret_key": SECRET},
            "store": kit.config(),
        },
        env={"EMPTY": ""},
    )
    with pytest.raises(ServiceConfigError, match=r"client.auth_token \(or client.credentials\)"):
        Service(cfg)
    assert Service(cfg, workers=False).forwarder is None  # a listener alone needs no token
