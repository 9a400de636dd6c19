"""Prometheus metrics of one worker (own registry: several workers per process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.commands = Counter("ow_commands_total", "Commands received", ["kind"], registry=r)
        self.outcomes = Counter("ow_orders_total", "Orders by outcome", ["outcome"], registry=r)
        self.to_accepted = Histogram("ow_command_to_accepted_seconds",
                                     "command created -> accepted", buckets=LATENCY_BUCKETS,
                                     registry=r)
        self.to_terminal = Histogram("ow_command_to_terminal_seconds",
                                     "command created -> terminal event",
                                     ["outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.retries = Counter("ow_exchange_retries_total", "Transient-error retries",
                               ["operation"], registry=r)
        self.reconciliations = Counter("ow_reconciliations_total",
                                       "Orders adopted or checked by client order id",
                                       ["kind"], registry=r)
        self.in_flight = Gauge("ow_in_flight_commands", "Commands being handled", registry=r)
        self.tracked = Gauge("ow_tracked_orders", "Live orders the tracker follows here",
                             registry=r)
        self.events = Counter("ow_events_published_total", "Events confirmed by the broker",
                              ["kind"], registry=r)

    def on_retry(self, operation: str, exc: BaseException) -> None:
        self.retries.labels(operation).inc()
