"""The public names: sorted, importable, and complete for what users catch and build."""

from __future__ import annotations

import importlib
import inspect

import pytest

import mfo_client
from mfo_client.api import _errors

PACKAGES = [
    "mfo_client",
    "mfo_client.api",
    "mfo_client.config",
    "mfo_client.delivery",
    "mfo_client.devserver",
    "mfo_client.flows",
    "mfo_client.observability",
    "mfo_client.webhook",
    "mfo_client.webhook.schemes",
    "mfo_client.webhook.signing",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    # Constants first, then the rest in code-point order (ruff's RUF022 order).
    assert exported == sorted(exported, key=lambda s: (not s.isupper(), s))
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []


def test_every_error_class_is_exported_at_the_top() -> None:
    errors = {
        name
        for name, obj in vars(_errors).items()
        if inspect.isclass(obj) and issubclass(obj, Exception)
    }
    assert errors <= set(mfo_client.__all__)


def test_clients_and_models_are_exported_at_the_top() -> None:
    for name in ["MFOClient", "AsyncMFOClient", "Event", "Job", "Resource", "ChatMessage"]:
        assert name in mfo_client.__all__
