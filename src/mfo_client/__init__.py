"""mfo-client: the edge agent of the MFO (MindFlight Orchestrator) platform."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
