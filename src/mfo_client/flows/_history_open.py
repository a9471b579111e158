"""Which run history a configuration names: its store's backend decides.

`store.backend: sqlite` records runs in the SQLite file `flows.history`; `store.backend: redis`
records them in that Redis (`store.url`), under `store.prefix`, beside the events, so every
listener and worker sharing the store also shares the run history (and `mfo runs` with the same
config sees all their runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfo_client.flows._history_redis import RedisRunHistory
from mfo_client.flows._history_sqlite import SQLiteRunHistory

if TYPE_CHECKING:
    from mfo_client.config import Config

__all__ = ["open_history"]


def open_history(config: Config) -> SQLiteRunHistory | RedisRunHistory:
    """The run history `config` names (not connected yet: the first call connects)."""
    store = config.store
    if store.backend == "redis":
        assert store.url is not None  # the config refuses redis without a url
        return RedisRunHistory(store.url.get_secret_value(), store.prefix)
    return SQLiteRunHistory(config.flows.history)
