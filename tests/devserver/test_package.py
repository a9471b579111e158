"""The public surface of `mfo_client.devserver` and its settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import mfo_client.devserver as devserver
from mfo_client.devserver import DevServerSettings, FaultSpec


def test_all_is_sorted_and_complete() -> None:
    assert devserver.__all__ == sorted(devserver.__all__)
    assert set(devserver.__all__) == {"DevServerSettings", "FaultSpec", "create_app", "run"}


def test_defaults() -> None:
    settings = DevServerSettings()
    assert (settings.host, settings.port, settings.db) == ("127.0.0.1", 8081, ":memory:")
    assert settings.token == "dev-token"
    assert not settings.login_enabled
    assert settings.token_ttl == 3600 and settings.job_duration == 0.5


def test_username_and_password_go_together() -> None:
    with pytest.raises(ValidationError, match="together"):
        DevServerSettings(username="alice")


def test_fault_defaults() -> None:
    assert FaultSpec(status=500).effective_fail_rate == 1.0
    assert FaultSpec(latency_ms=10).effective_fail_rate == 0.0
    assert FaultSpec(fail_rate=0.2).effective_status == 503


def test_initial_fault_routes_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown route template"):
        devserver.create_app(DevServerSettings(faults=FaultSpec(routes=["GET /api/nope"])))
