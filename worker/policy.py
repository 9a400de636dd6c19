"""Policies derived from Settings (retry, placement), reporting to Metrics when given."""

from __future__ import annotations

from worker.exchange.placement import PlacementPolicy
from worker.exchange.retry import RetryPolicy
from worker.metrics import Metrics
from worker.settings import Settings

_PLAIN: dict[int, tuple[Settings, RetryPolicy]] = {}


def retry_policy(settings: Settings, metrics: Metrics | None = None) -> RetryPolicy:
    if metrics is None:  # asked for on every order: built once per Settings object
        cached = _PLAIN.get(id(settings))
        if cached is not None and cached[0] is settings:
            return cached[1]
        if len(_PLAIN) > 64:
            _PLAIN.clear()
        policy = _retry_policy(settings, None)
        _PLAIN[id(settings)] = (settings, policy)
        return policy
    return _retry_policy(settings, metrics)


def _retry_policy(settings: Settings, metrics: Metrics | None) -> RetryPolicy:
    return RetryPolicy(attempts=settings.retry_attempts, max_total_s=settings.retry_max_total_s,
                       initial_s=settings.retry_initial_s,
                       max_backoff_s=settings.retry_max_backoff_s,
                       on_retry=metrics.on_retry if metrics is not None else None)


def placement_policy(settings: Settings, metrics: Metrics | None = None) -> PlacementPolicy:
    return PlacementPolicy(lookups=settings.reconcile_lookups,
                           lookup_delay_s=settings.reconcile_delay_s,
                           refused_backoff_s=settings.retry_initial_s * 5,
                           on_reconcile=metrics.on_reconcile if metrics is not None else None)
