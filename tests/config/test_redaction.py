"""The printable configuration never contains secret text, however the secret got there."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, SecretStr

from mfo_client.config import Config, load_config
from mfo_client.config._redact import redact
from tests._seed import EXPECTED_SEED_OUTPUT

SECRETS = ("your-secure-api-token", "your-very-secret-webhook-key", "login-pw-1", "env-token")


def test_redacted_dict_of_the_seed_file(seed_path: Path) -> None:
    config = load_config(seed_path, env={})

    assert config.redacted_dict() == EXPECTED_SEED_OUTPUT


def test_no_secret_text_anywhere_in_the_dump(seed_path: Path) -> None:
    config = load_config(
        seed_path,
        env={
            "MFO_CLIENT__CREDENTIALS__USERNAME": "edge",
            "MFO_CLIENT__CREDENTIALS__PASSWORD": "login-pw-1",
            "MFO_CLIENT__AUTH_TOKEN": "env-token",
        },
    )

    dumped = config.redacted_dict()
    text = json.dumps(dumped)

    assert dumped["client"]["credentials"] == {"username": "edge", "password": "***"}
    for secret in SECRETS:
        assert secret not in text


def test_unset_secrets_stay_null() -> None:
    dumped = Config().redacted_dict()

    assert dumped["client"]["auth_token"] is None
    assert dumped["webhook_listener"]["secret_key"] is None


class _Hook(BaseModel):
    token: SecretStr


class _Later(BaseModel):
    """Secrets added later, in places no field list would know about."""

    api_key: SecretStr
    hooks: list[_Hook]
    by_name: dict[str, SecretStr]


def test_secrets_are_found_by_type_wherever_they_are() -> None:
    later = _Later(
        api_key=SecretStr("k1"),
        hooks=[_Hook(token=SecretStr("k2"))],
        by_name={"a": SecretStr("k3")},
    )

    assert redact(later) == {"api_key": "***", "hooks": [{"token": "***"}], "by_name": {"a": "***"}}
