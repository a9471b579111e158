"""The reference MFO server: the contract in `openapi/mfo-api.yaml`, run locally for development.

It keeps its state in SQLite, computes job progress from the clock, and adds development-only
controls under `/_admin/*` (fault injection, request stats, token expiry). Start it with
`mfo dev-server` or `run(DevServerSettings(...))`; embed it with `create_app`.
"""

from __future__ import annotations

from mfo_client.devserver._app import create_app
from mfo_client.devserver._server import run
from mfo_client.devserver.settings import DevServerSettings, FaultSpec

__all__ = ["DevServerSettings", "FaultSpec", "create_app", "run"]
