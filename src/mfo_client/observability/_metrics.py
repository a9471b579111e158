"""Prometheus metrics of `mfo serve`, in a registry per service (tests run several at once).

The listener and the forwarder report through the small methods here; store-derived gauges
(outbox depth, dead letters, breaker state) are refreshed when `/metrics` is scraped, so they
cost nothing between scrapes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mfo_webhook_requests",
            "Webhook requests by source and status.",
            ["source", "status"],
            registry=r,
        )
        self.verification_failures = Counter(
            "mfo_webhook_verification_failures",
            "Refused signatures by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.deliveries = Counter(
            "mfo_delivery_attempts", "Forwarding attempts by outcome.", ["outcome"], registry=r
        )
        self.delivery_seconds = Histogram(
            "mfo_delivery_duration_seconds",
            "Time to send one event to the MFO server.",
            registry=r,
        )
        self.outbox = Gauge(
            "mfo_outbox_events", "Events in the outbox by state.", ["state"], registry=r
        )
        self.breaker = Gauge(
            "mfo_circuit_breaker_state",
            "Breaker per server: 0 closed, 1 half-open, 2 open.",
            ["server"],
            registry=r,
        )

        self.flow_runs = Counter(
            "mfo_flow_runs",
            "Finished flow runs started by triggers, by trigger and status.",
            ["trigger", "status"],
            registry=r,
        )
        self.flow_run_seconds = Histogram(
            "mfo_flow_run_duration_seconds",
            "Time from a triggered run's start to its end, by trigger.",
            ["trigger"],
            registry=r,
        )
        self.flow_task_seconds = Histogram(
            "mfo_flow_task_duration_seconds",
            "Time each task of a triggered run took, by trigger, task and status.",
            ["trigger", "task", "status"],
            registry=r,
        )
        self.flow_jobs = Gauge(
            "mfo_flow_jobs",
            "Flow-run jobs in the store by state (pending, in_flight, done, dead).",
            ["state"],
            registry=r,
        )
        self.flow_runs_active = Gauge(
            "mfo_flow_runs_active",
            "Triggered runs in progress, by trigger.",
            ["trigger"],
            registry=r,
        )

    def request(self, source: str, status: int) -> None:
        self.requests.labels(source, str(status)).inc()

    def verification_failed(self, source: str, reason: str) -> None:
        self.verification_failures.labels(source, reason).inc()

    def delivery(self, outcome: str, seconds: float | None = None) -> None:
        self.deliveries.labels(outcome).inc()
        if seconds is not None:
            self.delivery_seconds.observe(seconds)

    def set_outbox(self, pending: int, in_flight: int, delivered: int, dead: int) -> None:
        for state, value in (
            ("pending", pending),
            ("in_flight", in_flight),
            ("delivered", delivered),
            ("dead", dead),
        ):
            self.outbox.labels(state).set(value)

    def set_breaker(self, server: str, state: str) -> None:
        self.breaker.labels(server).set(_BREAKER_VALUE.get(state, -1))

    def set_flow_jobs(self, pending: int, in_flight: int, done: int, dead: int) -> None:
        for state, value in (
            ("pending", pending),
            ("in_flight", in_flight),
            ("done", done),
            ("dead", dead),
        ):
            self.flow_jobs.labels(state).set(value)

    def flow_run_started(self, trigger: str) -> None:
        self.flow_runs_active.labels(trigger).inc()

    def flow_run_finished(self, trigger: str, status: str | None, seconds: float | None) -> None:
        """`status` None: the run did not end here (handed back at shutdown, or an error)."""
        self.flow_runs_active.labels(trigger).dec()
        if status is None:
            return
        self.flow_runs.labels(trigger, status).inc()
        if seconds is not None:
            self.flow_run_seconds.labels(trigger).observe(seconds)

    def flow_task(self, trigger: str, task: str, status: str, seconds: float) -> None:
        self.flow_task_seconds.labels(trigger, task, status).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
