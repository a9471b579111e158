from __future__ import annotations

import mfo_client.config


def test_public_names() -> None:
    assert mfo_client.config.__all__ == [
        "CircuitBreakerConfig",
        "ClientConfig",
        "Config",
        "ConfigError",
        "ConfigProblem",
        "Credentials",
        "Duration",
        "LoggingConfig",
        "RetryConfig",
        "WebhookListenerConfig",
        "format_duration",
        "load_config",
        "parse_duration",
    ]
    assert mfo_client.config.__all__ == sorted(mfo_client.config.__all__)
    for name in mfo_client.config.__all__:
        assert getattr(mfo_client.config, name) is not None
