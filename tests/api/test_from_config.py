"""Clients built from the `client` section of a configuration."""

from __future__ import annotations

import pytest

from mfo_client import AsyncMFOClient, MFOClient, PasswordLoginAuth, ServerError, StaticTokenAuth
from mfo_client.api import CircuitBreakerRegistry
from mfo_client.config import Config
from tests.api.conftest import PASSWORD, TOKEN, USER, Attempts, Server


def test_token_config_reaches_the_server(
    server: Server, breakers: CircuitBreakerRegistry, attempts: Attempts
) -> None:
    cfg = Config.from_mapping(
        {
            "client": {
                "base_url": server.api,
                "auth_token": "${MFO_TEST_TOKEN}",
                "timeout": "5s",
                "retry": {"max_attempts": 2, "initial_backoff": "10ms", "max_backoff": "20ms"},
                "circuit_breaker": {"failure_threshold": 7, "reset_timeout": "1m"},
            }
        },
        env={"MFO_TEST_TOKEN": TOKEN},
    )
    server.faults(status=503, count=5)
    with MFOClient.from_config(cfg, breakers=breakers, hooks=[attempts]) as mfo:
        assert isinstance(mfo.auth, StaticTokenAuth)
        assert mfo._core.retry.max_attempts == 2
        assert mfo._core.breaker.policy.failure_threshold == 7
        assert mfo._http.timeout.read == 5.0
        with pytest.raises(ServerError):
            mfo.resources.list()
    assert len(attempts) == 2
    assert all(a.retry_in is None or a.retry_in <= 0.02 for a in attempts)


async def test_credentials_config_logs_in_at_the_auth_url(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    cfg = Config.from_mapping(
        {
            "client": {
                "base_url": server.api,
                "auth_base_url": server.auth,
                "credentials": {"username": USER, "password": PASSWORD},
            }
        }
    )
    async with AsyncMFOClient.from_config(cfg, breakers=breakers) as mfo:
        assert isinstance(mfo.auth, PasswordLoginAuth)
        await mfo.events.send_event({"type": "configured", "payload": {}})
    assert server.count("POST /auth/login", 200) == 1
    assert server.count("POST /api/events", 202) == 1


def test_auth_base_url_defaults_to_the_api_hosts_auth_path(
    server: Server, breakers: CircuitBreakerRegistry
) -> None:
    cfg = Config.from_mapping(
        {
            "client": {
                "base_url": server.api,
                "credentials": {"username": USER, "password": PASSWORD},
            }
        }
    )
    with MFOClient.from_config(cfg, breakers=breakers) as mfo:
        mfo.resources.list()
    assert server.count("POST /auth/login", 200) == 1
