"""Prometheus metrics of one worker (own registry: several workers per process in tests).

Every label value is lower_snake_case (``PlaceOrder`` -> ``place_order``), whoever
passes it. Besides the order metrics: broker reachability (``ow_broker_up``),
build info and the standard process collector.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import re
from importlib import metadata
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def snake(value: object) -> str:
    """``PlaceOrder`` / ``order-accepted`` / ``Timeout: x`` -> lower_snake_case (40 chars)."""
    return _snake(str(value))


@functools.lru_cache(maxsize=4096)  # label values repeat on every order: convert once
def _snake(value: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", value)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "unknown"


def reason_label(reason: str) -> str:
    """A bounded label from a free-text reason: the part before the first ':'."""
    return snake(reason.split(":", 1)[0])


class _SnakeLabels:
    """Label values normalised to lower_snake_case; the child of each positional value
    tuple is kept (children are never removed here), so a hot path's ``labels(...)`` is
    one dict lookup instead of normalising and prometheus_client's lock each time."""

    def labels(self, *values: Any, **kw: Any) -> Any:
        if kw:
            return super().labels(*(snake(v) for v in values),  # type: ignore[misc]
                                  **{k: snake(v) for k, v in kw.items()})
        children: dict[tuple[Any, ...], Any] = self.__dict__.setdefault("_children", {})
        with contextlib.suppress(KeyError, TypeError):  # TypeError: an unhashable value
            return children[values]
        child = super().labels(*(snake(v) for v in values))  # type: ignore[misc]
        with contextlib.suppress(TypeError):
            children[values] = child
        return child


class SnakeCounter(_SnakeLabels, Counter):
    """A Counter whose label values are normalised to lower_snake_case."""


class SnakeHistogram(_SnakeLabels, Histogram):
    """A Histogram whose label values are normalised to lower_snake_case."""


def version() -> str:
    try:
        return metadata.version("orderworker")
    except metadata.PackageNotFoundError:
        return "unknown"


def standard_metrics(registry: CollectorRegistry, role: str) -> Gauge:
    """Process, platform and build-info collectors; returns the ``ow_broker_up`` gauge."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Gauge("ow_build_info", "orderworker build", ["version", "python", "role"],
          registry=registry).labels(version(), platform.python_version(), role).set(1)
    return Gauge("ow_broker_up", "1 while the broker connection is up and answering",
                 registry=registry)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.broker_up = standard_metrics(r, "worker")
        self.commands = SnakeCounter("ow_commands_total", "Commands received", ["kind"],
                                     registry=r)
        self.outcomes = SnakeCounter("ow_orders_total", "Orders by outcome", ["outcome"],
                                     registry=r)
        self.to_accepted = Histogram("ow_command_to_accepted_seconds",
                                     "command created -> accepted", buckets=LATENCY_BUCKETS,
                                     registry=r)
        self.to_terminal = SnakeHistogram("ow_command_to_terminal_seconds",
                                          "command created -> terminal event",
                                          ["outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.retries = SnakeCounter("ow_exchange_retries_total", "Transient-error retries",
                                    ["operation"], registry=r)
        self.reconciliations = SnakeCounter(
            "ow_reconciliations_total",
            "Orders looked up by client order id: adopted on redelivery, orphans, "
            "ambiguous creates", ["kind"], registry=r)
        self.in_flight = Gauge("ow_in_flight_commands", "Commands being handled", registry=r)
        self.tracked = Gauge("ow_tracked_orders", "Live orders the tracker follows here",
                             registry=r)
        self.events = SnakeCounter("ow_events_published_total", "Events confirmed by the broker",
                                   ["kind"], registry=r)
        self.rejections = SnakeCounter("ow_rejections_total",
                                       "Rejected or failed orders by reason code",
                                       ["kind", "reason"], registry=r)
        self.dead_letters = SnakeCounter("ow_dead_letters_total",
                                         "Commands the worker dead-lettered, by reason",
                                         ["reason"], registry=r)
        self.unacked_max = Gauge("ow_message_unacked_seconds_max",
                                 "Longest time one shard-queue message stayed unacked "
                                 "(delivery -> ack/nack) since start", registry=r)
        self.unacked_max_s = 0.0

    def on_retry(self, operation: str, exc: BaseException) -> None:
        self.retries.labels(operation).inc()

    def on_reconcile(self) -> None:
        """An ambiguous create is being reconciled by client order id."""
        self.reconciliations.labels("ambiguous_create").inc()

    def on_event(self, kind: str, reason: object = None) -> None:
        """One event confirmed by the broker; refusals counted by reason too."""
        self.events.labels(kind).inc()
        if reason is not None and kind in ("order_rejected", "order_failed"):
            self.rejections.labels(kind, str(reason)).inc()

    def on_dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason_label(reason)).inc()

    def on_settled(self, held_s: float) -> None:
        """A shard-queue message was acked or nacked ``held_s`` after its delivery."""
        if held_s > self.unacked_max_s:
            self.unacked_max_s = held_s
            self.unacked_max.set(held_s)


class AuditMetrics:
    """Metrics of the audit consumer (``orderworker audit run``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.broker_up = standard_metrics(r, "audit")
        self.received = Counter("ow_audit_events_received_total", "Events received", registry=r)
        self.stored = Counter("ow_audit_events_stored_total", "New events committed",
                              registry=r)
        self.undecodable = Counter("ow_audit_events_undecodable_total",
                                   "Events dead-lettered as undecodable", registry=r)
        self.store_failures = Counter("ow_audit_store_failures_total",
                                      "Batches the store refused (left for redelivery)",
                                      registry=r)
        self.lag = Gauge("ow_audit_lag_seconds",
                         "Age of the oldest event in the last committed batch", registry=r)
        self.last_commit = Gauge("ow_audit_last_commit_timestamp_seconds",
                                 "Unix time of the last committed batch", registry=r)
