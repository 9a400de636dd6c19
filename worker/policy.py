"""Policies derived from Settings (retry, placement)."""

from __future__ import annotations

from worker.exchange.placement import PlacementPolicy
from worker.exchange.retry import RetryPolicy
from worker.settings import Settings


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(attempts=settings.retry_attempts, max_total_s=settings.retry_max_total_s,
                       initial_s=settings.retry_initial_s,
                       max_backoff_s=settings.retry_max_backoff_s)


def placement_policy(settings: Settings) -> PlacementPolicy:
    return PlacementPolicy(lookups=settings.reconcile_lookups,
                           lookup_delay_s=settings.reconcile_delay_s,
                           refused_backoff_s=settings.retry_initial_s * 5)
