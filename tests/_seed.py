"""The seed configuration file and what `mfo config check` must print for it."""

from __future__ import annotations

from pathlib import Path

SEED = Path(__file__).parent / "data" / "config" / "seed_config.yaml"
SEED_SECRETS = ("your-secure-api-token", "your-very-secret-webhook-key")
EXPECTED_SEED_OUTPUT = {
    "client": {
        "base_url": "https://api.mfo.example.com/api",
        "auth_base_url": "https://auth.mfo.example.com/auth",
        "timeout": "30s",
        "auth_token": "***",
        "credentials": None,
        "retry": {
            "max_attempts": 3,
            "initial_backoff": "1s",
            "max_backoff": "30s",
            "backoff_multiplier": 2.0,
        },
        "circuit_breaker": {"failure_threshold": 5, "reset_timeout": "1m"},
    },
    "webhook_listener": {
        "host": "localhost",
        "port": 8080,
        "path": "/webhook",
        "secret_key": "***",
        "max_body_size": 26214400,
        "sources": [],
        "proxy_headers": False,
        "forwarded_allow_ips": ["127.0.0.1"],
        "root_path": "",
    },
    "logging": {"level": "info", "format": "text"},
    "store": {
        "backend": "sqlite",
        "path": ".mfo/mfo.db",
        "fsync": "normal",
        "url": None,
        "prefix": "mfo",
        "wait_replicas": 0,
        "wait_timeout": "1s",
        "max_pending": 100000,
        "retention": "168h",
    },
    "delivery": {
        "max_attempts": 20,
        "concurrency": 4,
        "lease_time": "1m",
        "initial_backoff": "1s",
        "max_backoff": "10m",
    },
    "metrics": {"enabled": True, "path": "/metrics", "host": None, "port": None},
    "flows": {
        "concurrency": 8,
        "max_runs": 16,
        "history": ".mfo/runs.db",
        "lease_time": "1m",
        "tasks": {},
        "transformation_rules": {},
        "secrets": [],
    },
    "triggers": [],
}
